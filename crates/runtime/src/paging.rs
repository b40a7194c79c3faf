//! Cursor paging for list RPCs: a page token names the last item of the previous page by its
//! sort key (a time and an id), so pages stay stable while new items arrive.
//!
//! Tokens are signed (HMAC-SHA256 with a key kept in the service's schema, shared by its
//! replicas): a token this service did not issue is refused as INVALID_ARGUMENT instead of
//! being interpreted, whatever it holds.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

/// Items per page when the caller asks for 0, and the most a caller may ask for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Bytes of the HMAC kept in a token: enough that guessing one is hopeless.
const TAG_BYTES: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("page token is not one this service issued")]
pub struct BadPageToken;

impl From<BadPageToken> for tonic::Status {
    fn from(_: BadPageToken) -> Self {
        tonic::Status::invalid_argument("page.pageToken: not a token this service issued")
    }
}

/// The page size to use for a request's `page_size`.
pub fn page_size(requested: u32) -> i64 {
    i64::from(match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    })
}

/// Issues and checks a service's page tokens.
#[derive(Clone)]
pub struct Pager {
    key: [u8; 32],
}

impl std::fmt::Debug for Pager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pager { key: [REDACTED] }")
    }
}

/// One page of a list: its items and the token of the next page (empty on the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page_token: String,
}

impl Pager {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        // HMAC takes a key of any length: this cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Vec::new();
        };
        mac.update(payload);
        mac.finalize().into_bytes()[..TAG_BYTES].to_vec()
    }

    /// The token that continues after the item sorted at (`at`, `id`).
    pub fn encode(&self, at: DateTime<Utc>, id: Uuid) -> String {
        let mut bytes = Vec::with_capacity(8 + 16 + TAG_BYTES);
        bytes.extend_from_slice(&at.timestamp_micros().to_be_bytes());
        bytes.extend_from_slice(id.as_bytes());
        let tag = self.mac(&bytes);
        bytes.extend_from_slice(&tag);
        B64.encode(bytes)
    }

    /// The sort key a token continues after; `None` for the first page (an empty token).
    pub fn decode(&self, token: &str) -> Result<Option<(DateTime<Utc>, Uuid)>, BadPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let bytes = B64.decode(token).map_err(|_| BadPageToken)?;
        if bytes.len() != 8 + 16 + TAG_BYTES {
            return Err(BadPageToken);
        }
        let (payload, tag) = bytes.split_at(24);
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return Err(BadPageToken);
        };
        mac.update(payload);
        mac.verify_truncated_left(tag).map_err(|_| BadPageToken)?;
        let micros = i64::from_be_bytes(payload[..8].try_into().map_err(|_| BadPageToken)?);
        let at = DateTime::from_timestamp_micros(micros).ok_or(BadPageToken)?;
        let id = Uuid::from_slice(&payload[8..]).map_err(|_| BadPageToken)?;
        Ok(Some((at, id)))
    }

    /// Rows fetched with `LIMIT size + 1`, cut to a page: the extra row only says there is a
    /// next page, whose token continues after the page's last item (`key` gives its sort key).
    pub fn page<R, T>(
        &self,
        mut rows: Vec<R>,
        size: i64,
        key: impl Fn(&R) -> (DateTime<Utc>, Uuid),
        item: impl FnMut(R) -> T,
    ) -> Page<T> {
        let size = usize::try_from(size).unwrap_or(0);
        let more = rows.len() > size;
        rows.truncate(size);
        let next_page_token = match (more, rows.last()) {
            (true, Some(last)) => {
                let (at, id) = key(last);
                self.encode(at, id)
            }
            _ => String::new(),
        };
        Page {
            items: rows.into_iter().map(item).collect(),
            next_page_token,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pager() -> Pager {
        Pager::new([7; 32])
    }

    #[test]
    fn tokens_round_trip_and_forgeries_are_refused() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap_or_default();
        let id = Uuid::now_v7();
        let token = pager().encode(at, id);
        assert_eq!(pager().decode(&token), Ok(Some((at, id))));
        assert_eq!(pager().decode(""), Ok(None));
        assert_eq!(pager().decode("garbage!"), Err(BadPageToken));
        assert_eq!(Pager::new([8; 32]).decode(&token), Err(BadPageToken));
        // A token for a time out of range, correctly shaped but not signed by us.
        let mut forged = i64::MAX.to_be_bytes().to_vec();
        forged.extend_from_slice(id.as_bytes());
        forged.extend_from_slice(&[0; TAG_BYTES]);
        assert_eq!(pager().decode(&B64.encode(forged)), Err(BadPageToken));
    }

    #[test]
    fn pages_cut_the_extra_row_into_a_token() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_000_000).unwrap_or_default();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = pager().page(ids.clone(), 2, |id| (at, *id), |id| id.to_string());
        assert_eq!(page.items.len(), 2);
        assert_eq!(
            pager().decode(&page.next_page_token),
            Ok(Some((at, ids[1])))
        );
        let last = pager().page(ids[..2].to_vec(), 2, |id| (at, *id), |id| id.to_string());
        assert_eq!(last.next_page_token, "");
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(page_size(0), 50);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(10_000), 500);
    }
}
