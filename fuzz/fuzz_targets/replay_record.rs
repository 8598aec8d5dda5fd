//! An audit file given to `wardenctl bundle replay --audit-file` is
//! untrusted: each entry's record is read back into the decision and the
//! request it recorded. Reading one never panics, and a decision record
//! read back is faithful to the record:
//! * its strings, verdict and reasons are the record's;
//! * its request is the one the record's `input` document reads as, and
//!   that request's input document (`to_json`, also as JSON text and as the
//!   audit log's canonical encoding) reads back as the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value as Json};
use warden::input::{from_json, to_json};
use warden::replay::Recorded;
use warden::request::CheckRequest;
use warden_audit::Entry;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Json>(data) else {
        return;
    };
    // As replay reads an audit file: a line is an entry, holding a record.
    if let Ok(entry) = Entry::from_json(&value) {
        read(entry.seq, &entry.record);
    }
    // The value as a record, as it is and with whatever a decision record
    // needs filled in; and as the input document of a decision record, so
    // that `from_json` is reached without finding the record's fields first.
    read(0, &value);
    if let Json::Object(fields) = &value {
        read(1, &completed(fields.clone()));
    }
    read(2, &decision(value.clone()));
    if let Ok(request) = from_json(&value) {
        round_trip(&request);
    }
});

/// Reads `record` as replay does, and checks what it read.
fn read(seq: u64, record: &Json) {
    let result = Recorded::from_record(seq, record);
    assert_eq!(
        Recorded::from_record(seq, record),
        result,
        "reading a record is not deterministic"
    );
    match result {
        Ok(Some(recorded)) => {
            faithful(seq, &recorded, record);
            round_trip(&recorded.request);
        }
        Ok(None) => assert_ne!(record["type"], "decision", "a decision was skipped"),
        Err(_) => {}
    }
}

/// What was read is what the record says.
fn faithful(seq: u64, recorded: &Recorded, record: &Json) {
    assert_eq!(
        record["type"], "decision",
        "read a record that is not a decision"
    );
    assert_eq!(recorded.seq, seq);
    for (field, value) in [
        ("decision_id", &recorded.decision_id),
        ("platform", &recorded.platform),
        ("agent_id", &recorded.agent_id),
        ("principal", &recorded.principal),
        ("resource", &recorded.resource),
    ] {
        assert_eq!(record[field], Json::from(value.as_str()), "{field}");
    }
    assert_eq!(record["decision"], recorded.verdict.as_str());
    for (field, values) in [
        ("reasons", &recorded.reasons),
        ("redacted", &recorded.redacted),
    ] {
        let expected = record
            .get(field)
            .cloned()
            .unwrap_or(Json::Array(Vec::new()));
        assert_eq!(expected, Json::from(values.clone()), "{field}");
    }
    assert_eq!(
        from_json(&record["input"]).as_ref(),
        Ok(&recorded.request),
        "the request is not the record's input"
    );
}

/// A request's input document reads back as the request: as a value, as
/// JSON text, and as the canonical encoding the audit log stores.
fn round_trip(request: &CheckRequest) {
    let input = to_json(request);
    assert_eq!(
        from_json(&input).as_ref(),
        Ok(request),
        "from_json(to_json(r)) is not r: {input}"
    );
    for text in [input.to_string(), warden_audit::canonical(&input)] {
        let reparsed: Json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("the input document's text does not parse ({e}): {text}"));
        assert_eq!(
            from_json(&reparsed).as_ref(),
            Ok(request),
            "the input document's text does not read back: {text}"
        );
    }
}

/// `fields`, with every field a decision record must have that is missing
/// (or `type`, whatever it is) set to a valid value.
fn completed(mut fields: Map<String, Json>) -> Json {
    fields.insert("type".into(), "decision".into());
    for (key, value) in [
        ("decision", "deny"),
        ("decision_id", "d-1"),
        ("time", "2026-01-02T03:04:05.678Z"),
        ("platform", "fuzz-platform"),
        ("agent_id", "fuzz-agent"),
        ("principal", "user:alice"),
        ("resource", "doc:1"),
    ] {
        fields.entry(key).or_insert_with(|| value.into());
    }
    Json::Object(fields)
}

/// A valid decision record whose input document is `input`.
fn decision(input: Json) -> Json {
    let mut fields = Map::new();
    fields.insert("input".into(), input);
    fields.insert("kill_switch_id".into(), Json::Null);
    fields.insert("reasons".into(), Json::from(vec!["policy:fuzz"]));
    completed(fields)
}
