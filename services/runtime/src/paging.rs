//! Cursor paging for list RPCs: a page token names the last item of the previous page by its
//! sort key (a time and an id), so pages stay stable while new items arrive.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Items per page when the caller asks for 0, and the most a caller may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("page token is not one this service issued")]
pub struct BadPageToken;

/// The page size to use for a request's `page_size`.
pub fn page_size(requested: u32) -> i64 {
    i64::from(match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    })
}

/// The token that continues after the item sorted at (`at`, `id`).
pub fn encode(at: DateTime<Utc>, id: Uuid) -> String {
    B64.encode(format!("{}|{id}", at.timestamp_micros()))
}

/// The sort key a token continues after; `None` for the first page (an empty token).
pub fn decode(token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, BadPageToken> {
    if token.is_empty() {
        return Ok(None);
    }
    let text = B64
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(BadPageToken)?;
    let (micros, id) = text.split_once('|').ok_or(BadPageToken)?;
    let at = micros
        .parse()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(BadPageToken)?;
    Ok(Some((at, Uuid::parse_str(id).map_err(|_| BadPageToken)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let id = Uuid::now_v7();
        assert_eq!(decode(&encode(at, id)), Ok(Some((at, id))));
        assert_eq!(decode(""), Ok(None));
        assert_eq!(decode("garbage!"), Err(BadPageToken));
        assert_eq!(decode(&B64.encode("12|not-a-uuid")), Err(BadPageToken));
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(10_000), 500);
    }
}
