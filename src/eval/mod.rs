//! `affectd eval …`: accuracy checks anyone can run on their own data. One file per command;
//! the shared metrics are in [`metrics`].

pub mod asr;
pub mod expression;
pub mod fusion;
pub mod metrics;
pub mod pairs;
pub mod recordings;
pub mod text;
pub mod voice;

/// Opens a CSV file with a header row; returns the reader and the header's column names, trimmed,
/// without a byte-order mark. Errors name the file (and line 1 for a bad header).
pub fn open_csv(path: &std::path::Path) -> crate::Result<(csv::Reader<std::fs::File>, Vec<String>)> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(false).from_reader(file);
    let header = rdr
        .headers()
        .map_err(|e| crate::Error::input(path, format!("line 1: cannot read the header: {e}")))?;
    let cols = header.iter().map(|h| h.trim().trim_start_matches('\u{feff}').to_string()).collect();
    Ok((rdr, cols))
}
