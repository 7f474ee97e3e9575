//! HTTP basic authentication against the web config's bcrypt hashes.
//!
//! bcrypt is slow on purpose, so it runs on the blocking pool, at most `CONCURRENT_HASHES`
//! at a time, never on the reactor. Successful checks are cached under a SHA-256 of user,
//! password and hash (no password is kept), so a scraper's repeated credentials cost one
//! bcrypt in all and never wait behind anyone guessing; failures are not cached, so
//! guesses cannot push the scraper's entry out.
//!
//! A failed check costs the same work whoever the user is, so timing does not tell which
//! users exist, whatever their costs: bcrypt at cost c is 2^c rounds, an unknown user is
//! checked against a decoy hash of the highest cost configured (2^max), and a wrong
//! password for a user of a lower cost is followed by bcrypt at every cost from c to
//! max - 1, since 2^c + (2^c + 2^(c+1) + … + 2^(max-1)) = 2^max.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use hyper::header::HeaderValue;
use tokio::sync::Semaphore;

/// bcrypt checks running at once; more wait.
const CONCURRENT_HASHES: usize = 2;
/// Cached successes; when full, an arbitrary tenth is dropped (a scraper has one entry).
const CACHE_ENTRIES: usize = 1024;

/// The salt of the padding hashes: any fixed value does, their output is thrown away.
const PADDING_SALT: [u8; 16] = *b"oomwatch padding";

#[derive(Debug)]
struct User {
    hash: String,
    cost: u32,
}

#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, User>,
    /// A hash of the highest cost, checked for unknown users.
    decoy: String,
    max_cost: u32,
    cache: Mutex<HashSet<[u8; 32]>>,
    hashing: Arc<Semaphore>,
}

impl BasicAuth {
    /// `users` maps names to bcrypt hashes (validated by `web_config`). Makes the decoy,
    /// at the highest cost among them.
    pub fn new(users: BTreeMap<String, String>) -> Result<Self, bcrypt::BcryptError> {
        let users: BTreeMap<String, User> = users
            .into_iter()
            .map(|(name, hash)| {
                let cost = hash.parse::<bcrypt::HashParts>()?.get_cost();
                Ok((name, User { hash, cost }))
            })
            .collect::<Result<_, bcrypt::BcryptError>>()?;
        let max_cost = users
            .values()
            .map(|user| user.cost)
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = bcrypt::hash("oomwatch decoy: no such user", max_cost)?;
        Ok(Self {
            users,
            decoy,
            max_cost,
            cache: Mutex::new(HashSet::new()),
            hashing: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
        })
    }

    /// True when the Authorization header carries a known user and its password.
    pub async fn authorized(&self, header: Option<&HeaderValue>) -> bool {
        let Some((user, password)) = header.and_then(credentials) else {
            return false;
        };
        // A known user's failure is padded from its cost up to the highest.
        let (hash, pad_from) = match self.users.get(&user) {
            Some(known) => (known.hash.clone(), Some(known.cost)),
            None => (self.decoy.clone(), None),
        };
        let known = pad_from.is_some();
        let key = cache_key(&user, &password, &hash);
        if known && self.lock_cache().contains(&key) {
            return true;
        }
        let Ok(permit) = self.hashing.clone().acquire_owned().await else {
            return false;
        };
        let max_cost = self.max_cost;
        let verified = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let verified = bcrypt::verify(password.as_bytes(), &hash).unwrap_or(false);
            if let (false, Some(cost)) = (verified, pad_from) {
                pad_to_highest_cost(password.as_bytes(), cost, max_cost);
            }
            verified
        })
        .await
        .unwrap_or(false);
        if !(verified && known) {
            return false;
        }
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_ENTRIES {
            let drop: Vec<[u8; 32]> = cache.iter().take(CACHE_ENTRIES / 10).copied().collect();
            for key in drop {
                cache.remove(&key);
            }
        }
        cache.insert(key);
        true
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 32]>> {
        crate::sync::lock(&self.cache)
    }
}

/// bcrypt at every cost from `cost` to `max_cost - 1`: after a check at `cost` (2^cost
/// rounds), this makes the work 2^max_cost rounds in all, as the decoy's check is.
fn pad_to_highest_cost(password: &[u8], cost: u32, max_cost: u32) {
    for cost in cost..max_cost {
        std::hint::black_box(bcrypt::hash_with_salt(password, cost, PADDING_SALT).ok());
    }
}

/// `Basic base64(user:password)` into its parts.
fn credentials(header: &HeaderValue) -> Option<(String, String)> {
    let value = header.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

fn cache_key(user: &str, password: &str, hash: &str) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, password, hash] {
        context.update(&(part.len() as u64).to_le_bytes());
        context.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::try_from(format!("Basic {encoded}")).expect("header")
    }

    fn auth() -> BasicAuth {
        let hash = bcrypt::hash("s3cret:with colon", 4).expect("hash");
        BasicAuth::new(BTreeMap::from([("prometheus".to_owned(), hash)])).expect("auth")
    }

    #[tokio::test]
    async fn only_the_right_user_and_password_pass() {
        let auth = auth();
        assert!(
            auth.authorized(Some(&header("prometheus", "s3cret:with colon")))
                .await
        );
        // Cached: the same answer again.
        assert!(
            auth.authorized(Some(&header("prometheus", "s3cret:with colon")))
                .await
        );
        assert!(!auth.authorized(Some(&header("prometheus", "wrong"))).await);
        assert!(
            !auth
                .authorized(Some(&header("nobody", "s3cret:with colon")))
                .await
        );
        assert!(!auth.authorized(None).await);
        let bearer = HeaderValue::from_static("Bearer abc");
        assert!(!auth.authorized(Some(&bearer)).await);
        let garbage = HeaderValue::from_static("Basic !!!");
        assert!(!auth.authorized(Some(&garbage)).await);
    }

    #[tokio::test]
    async fn guesses_do_not_evict_the_scrapers_cached_success() {
        let auth = auth();
        let good = header("prometheus", "s3cret:with colon");
        assert!(auth.authorized(Some(&good)).await);
        for guess in 0..20 {
            let wrong = header("prometheus", &format!("guess {guess}"));
            assert!(!auth.authorized(Some(&wrong)).await);
        }
        assert_eq!(auth.lock_cache().len(), 1, "failures are not cached");
        assert!(auth.authorized(Some(&good)).await);
    }

    #[test]
    fn the_decoy_has_the_users_cost() {
        let auth = auth();
        let parts: bcrypt::HashParts = auth.decoy.parse().expect("bcrypt");
        assert_eq!(parts.get_cost(), 4);
    }

    #[test]
    fn a_users_cost_is_kept_and_the_decoy_has_the_highest() {
        let users = BTreeMap::from([
            ("fast".to_owned(), bcrypt::hash("a", 4).expect("hash")),
            ("slow".to_owned(), bcrypt::hash("b", 6).expect("hash")),
        ]);
        let auth = BasicAuth::new(users).expect("auth");
        assert_eq!(auth.users["fast"].cost, 4);
        assert_eq!(auth.max_cost, 6);
        let parts: bcrypt::HashParts = auth.decoy.parse().expect("bcrypt");
        assert_eq!(parts.get_cost(), 6);
    }

    #[tokio::test]
    async fn a_wrong_password_for_a_cheap_user_still_fails_after_padding() {
        let users = BTreeMap::from([
            ("fast".to_owned(), bcrypt::hash("a", 4).expect("hash")),
            ("slow".to_owned(), bcrypt::hash("b", 6).expect("hash")),
        ]);
        let auth = BasicAuth::new(users).expect("auth");
        assert!(!auth.authorized(Some(&header("fast", "b"))).await);
        assert!(auth.authorized(Some(&header("fast", "a"))).await);
        assert!(auth.authorized(Some(&header("slow", "b"))).await);
        let long = "x".repeat(100);
        assert!(!auth.authorized(Some(&header("fast", &long))).await);
    }

    #[test]
    fn the_cache_key_separates_its_parts() {
        assert_ne!(cache_key("ab", "c", "h"), cache_key("a", "bc", "h"));
    }
}
