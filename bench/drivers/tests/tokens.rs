//! The token benchmark's subjects answer without waiting, outside any
//! runtime, as `call_now` needs: the issuer's key set and the key are both
//! cached after set-up, in either order of requests.
#![cfg(feature = "oauth")]

use bench_drivers::tokens::TokenSubjects;
use bench_drivers::{Ok200, Subjects, call_now, request};
use tower::Layer;

#[test]
fn the_token_and_the_key_are_ready_after_set_up() {
    let s = Subjects::new();
    let t = TokenSubjects::new(&s);
    let mut ours = t.keys.layer().layer(Ok200);
    assert_eq!(call_now(&mut ours, request(&t.key)), 200);
    assert_eq!(call_now(&mut ours, request(&t.token)), 200);
    assert_eq!(call_now(&mut ours, request(&t.forged)), 401);
}
