//! Seed inputs for the fuzz targets (`runtime/fuzz/`): the decoders' tests write the real
//! messages they check as the targets' corpus.

/// Writes seed inputs for the fuzz target `target` as files
/// `$RHAI_MP_FUZZ_SEEDS/<target>/<name>-<n>` when that variable is set — how the committed
/// corpus was made; does nothing otherwise.
pub(crate) fn write_fuzz_seeds(target: &str, name: &str, seeds: &[Vec<u8>]) {
    let Some(dir) = std::env::var_os("RHAI_MP_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("{name}-{i}")), seed).unwrap();
    }
}
