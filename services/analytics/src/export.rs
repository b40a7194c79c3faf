//! Facts and cube rows as CSV, for a columnar engine where one Postgres is outgrown (README,
//! decision 6: DuckDB over the exported files, or Parquet DuckDB writes from them):
//! `redress-analytics export --out DIR`. Postgres' own `COPY … TO STDOUT (FORMAT csv,
//! HEADER)`, so every column is exported as stored and a reader needs no schema from us.

use std::{io::Write, path::Path};

use futures::StreamExt;
use sqlx::PgPool;

/// The tables exported, each to `<table>.csv`.
pub const TABLES: [&str; 3] = ["facts", "cube_day", "cube_month"];

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

/// Writes every table into `dir` (made if missing); returns each file and its size in bytes.
pub async fn write(pool: &PgPool, dir: &Path) -> Result<Vec<(String, u64)>, ExportError> {
    let failed = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::File { path, source }
    };
    std::fs::create_dir_all(dir).map_err(failed(dir))?;
    let mut written = Vec::new();
    for table in TABLES {
        let path = dir.join(format!("{table}.csv"));
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&path).map_err(failed(&path))?);
        let mut conn = pool.acquire().await?;
        // `table` is one of the constant names above.
        let mut rows = conn
            .copy_out_raw(&format!(
                "COPY {table} TO STDOUT WITH (FORMAT csv, HEADER true)"
            ))
            .await?;
        let mut size = 0u64;
        while let Some(chunk) = rows.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            file.write_all(&chunk).map_err(failed(&path))?;
        }
        file.flush().map_err(failed(&path))?;
        written.push((path.display().to_string(), size));
    }
    Ok(written)
}
