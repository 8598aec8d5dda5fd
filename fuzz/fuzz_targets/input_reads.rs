//! A candidate bundle's Rego is untrusted source. Replay scans its tokens
//! for the `input` paths it reads (`InputReads`), to tell whether a
//! decision could depend on a value the audit log redacted. Scanning never
//! panics, is deterministic, and its answers are consistent:
//! * reaching into a value reads its containers: `context.prompt` read
//!   means `context` is read;
//! * reading a whole object reads its members: when `context` is read as a
//!   whole (a member no reference in the source can name counts as read),
//!   `context.prompt` and what lies in it are read too; likewise when the
//!   whole `input` is.
//!
//! `context` read does not by itself mean `context.prompt` is: a policy
//! that reads only `input.context.ip` reaches into `context` (so redacting
//! all of `context` matters) but not into `context.prompt`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::bundle::RegoModule;
use warden::engine::reads::InputReads;

/// A member name no reference can name unless the source spells it out:
/// escaped keys are never decoded, so a name only comes from its own text.
const UNNAMED: &str = "fuzz_unnamed_member";

fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data).into_owned();
    let unnameable = !source.contains(UNNAMED);
    let modules = [RegoModule {
        path: "p.rego".into(),
        source,
        rego_v0: false,
    }];
    let Some(reads) = InputReads::of(&modules) else {
        return;
    };
    assert_eq!(
        InputReads::of(&modules).as_ref(),
        Some(&reads),
        "not deterministic"
    );

    let prompt = reads.reads("context.prompt");
    let context = reads.reads("context");
    if prompt {
        assert!(context, "context.prompt is read but context is not");
    }
    if reads.reads("context.prompt.text") {
        assert!(
            prompt,
            "context.prompt.text is read but context.prompt is not"
        );
    }
    if unnameable {
        // Read as a whole object: all its members are read.
        if reads.reads(&format!("context.{UNNAMED}")) {
            assert!(prompt, "all of context is read but not context.prompt");
            assert!(reads.reads("context.prompt.text"));
        }
        // The whole input document read: everything is.
        if reads.reads(UNNAMED) {
            for path in ["context", "context.prompt", "action.attributes.amount"] {
                assert!(reads.reads(path), "all of input is read but not {path}");
            }
        }
    }
});
