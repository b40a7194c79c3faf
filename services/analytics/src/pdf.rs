//! A report's HTML printed to PDF by headless Chromium (`--print-to-pdf`): the browser lays
//! out the inline SVG and the CJK text exactly as on screen, with the system's Noto Sans CJK
//! embedded. Chromium is an outside program, found on `PATH` (or `REDRESS_CHROMIUM`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

/// What to install when the browser or its fonts are missing (Debian package names).
pub const INSTALL: &str = "apt-get install chromium chromium-driver fonts-noto-cjk";

/// The browsers tried, in order, when `REDRESS_CHROMIUM` is not set.
const CANDIDATES: &[&str] = &["chromium", "chromium-browser", "google-chrome", "chrome"];

/// Printing a large report takes a few seconds; a hung browser must not hang the caller.
const TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("chromium not found (tried REDRESS_CHROMIUM, then {CANDIDATES:?} on PATH): {INSTALL}")]
    NoChromium,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("chromium ({browser}) failed printing {html} to PDF: {status}: {stderr}")]
    Failed {
        browser: String,
        html: String,
        status: String,
        stderr: String,
    },
    #[error("chromium did not finish printing {0} within {TIMEOUT:?}")]
    Timeout(String),
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The Chromium binary: `REDRESS_CHROMIUM` if set, else the first of the usual names on PATH.
pub fn chromium() -> Result<PathBuf, PdfError> {
    if let Some(path) = std::env::var_os("REDRESS_CHROMIUM") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(PdfError::NoChromium)
        };
    }
    CANDIDATES
        .iter()
        .find_map(|name| on_path(name))
        .ok_or(PdfError::NoChromium)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PdfError + '_ {
    move |source| PdfError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Prints the HTML file `html` to the PDF file `pdf` (A4, no browser header or footer).
pub async fn print(html: &Path, pdf: &Path) -> Result<(), PdfError> {
    let browser = chromium()?;
    let html = std::path::absolute(html).map_err(io(html))?;
    let pdf = std::path::absolute(pdf).map_err(io(pdf))?;
    // A profile of its own: the user's may be locked by a running browser, HOME may be
    // read-only in a container.
    let profile = std::env::temp_dir().join(format!(
        "redress-chromium-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7()
    ));
    // A stale file from an earlier run must not pass for this one's output.
    let _ = std::fs::remove_file(&pdf);
    let run = tokio::process::Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-pdf-header-footer",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .kill_on_drop(true)
        .output();
    let result = tokio::time::timeout(TIMEOUT, run).await;
    let _ = std::fs::remove_dir_all(&profile);
    let output = result
        .map_err(|_| PdfError::Timeout(html.display().to_string()))?
        .map_err(io(&browser))?;
    let printed = std::fs::metadata(&pdf)
        .map(|m| m.len() > 0)
        .unwrap_or(false);
    if !output.status.success() || !printed {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(PdfError::Failed {
            browser: browser.display().to_string(),
            html: html.display().to_string(),
            status: output.status.to_string(),
            stderr: stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | "),
        });
    }
    Ok(())
}
