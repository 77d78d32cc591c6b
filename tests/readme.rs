//! Every ```rhai block of README.md runs as written: each is a complete script that exits
//! with code 0 under each start method (within the time limit of `common::run`). A block
//! whose first line is `// (fragment)` is only shown, not run.

use crate::common::*;

/// The code of every ```rhai block of the README, with the line its fence is on.
fn rhai_blocks() -> Vec<(usize, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match &mut current {
            None if line.trim() == "```rhai" => current = Some((i + 1, String::new())),
            Some(_) if line.trim() == "```" => blocks.extend(current.take()),
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "README.md: a ```rhai block is not closed");
    blocks
}

#[test]
fn every_rhai_block_of_the_readme_runs() {
    let blocks = rhai_blocks();
    assert!(blocks.len() >= 5, "expected the README's rhai blocks, found {}", blocks.len());
    for (line, code) in blocks {
        if code.starts_with("// (fragment)") {
            continue;
        }
        for m in METHODS {
            // Printed only if the run fails: which block, under which start method.
            println!("README.md's ```rhai block at line {line}, under {m}:");
            run_script(&code, m).ok();
        }
    }
}
