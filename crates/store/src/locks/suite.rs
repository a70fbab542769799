//! The behavioural suite every [`ContactLocks`] backend must pass.
//!
//! Backends call [`run`] from their own tests with two holders on the same fresh lock space
//! (for Redis: one key prefix, two owners). A holder never locks again what it holds (backends
//! differ there: a lock file is not re-entrant, a Redis owner token is), so neither does the
//! suite.

use super::ContactLocks;

fn ids(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

/// Runs the suite; panics (test failure) on the first violation.
pub async fn run<L: ContactLocks>(a: &L, b: &L) {
    let ab = a
        .try_lock(&ids(&["a", "b", "a"]))
        .await
        .expect("lock")
        .expect("free contacts are locked");
    assert!(
        b.try_lock(&ids(&["b", "c"])).await.expect("lock").is_none(),
        "a contact held by another holder is not locked again"
    );
    assert!(
        b.try_lock(&ids(&["a"])).await.expect("lock").is_none(),
        "a duplicate id locked the contact once, not zero times"
    );
    // All or none: the failed attempt on (b, c) took nothing, so c is free.
    let c = b
        .try_lock(&ids(&["c"]))
        .await
        .expect("lock")
        .expect("a failed attempt takes nothing");
    assert!(a.renew(&ab).await.expect("renew"), "a held lock renews");
    assert!(b.renew(&c).await.expect("renew"));

    a.release(ab).await.expect("release");
    let b_held = b
        .try_lock(&ids(&["a", "b"]))
        .await
        .expect("lock")
        .expect("released contacts can be locked by another holder");
    assert!(
        a.try_lock(&ids(&["b"])).await.expect("lock").is_none(),
        "and are then theirs"
    );
    b.release(b_held).await.expect("release");
    b.release(c).await.expect("release");
    let again = a
        .try_lock(&ids(&["a", "b", "c"]))
        .await
        .expect("lock")
        .expect("everything released is free");
    a.release(again).await.expect("release");
}
