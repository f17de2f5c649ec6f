//! `POST /v1/actions` bodies as the edge reads them (`json_text::check`, then `ActionBody`),
//! and the digest people approve. Property: an accepted action's canonical form is stable (it
//! parses back to an action with the same canonical bytes) and its digest is unchanged by any
//! re-serialisation.
#![no_main]

use countersign_core::{Digest, PrincipalId, canonical, json_text};
use countersign_http::wire::ActionBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if json_text::check(data).is_err() {
        return;
    }
    let Ok(body) = serde_json::from_slice::<ActionBody>(data) else {
        return;
    };
    let Ok(action) = body.into_action() else {
        return;
    };
    if action.validate().is_err() {
        return;
    }
    let requester = PrincipalId::parse("agent:fuzz").expect("a principal id");
    let digest = Digest::of_action(&action, &requester);
    let canonical = canonical::to_vec(&action);
    json_text::check(&canonical).expect("the canonical form passes the edge's check");
    let again: countersign_core::Action =
        serde_json::from_slice(&canonical).expect("the canonical form parses");
    assert_eq!(
        canonical::to_vec(&again),
        canonical,
        "canonical form is stable"
    );
    assert_eq!(Digest::of_action(&again, &requester), digest);
    let pretty = serde_json::to_vec_pretty(&action).expect("serialises");
    let third: ActionBody = serde_json::from_slice(&pretty).expect("its own JSON parses");
    let third = third.into_action().expect("no requester");
    assert_eq!(Digest::of_action(&third, &requester), digest);
});
