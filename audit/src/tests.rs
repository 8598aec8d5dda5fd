use proptest::prelude::*;
use serde_json::json;

use super::*;

fn chain(records: &[Json]) -> Vec<String> {
    let mut prev = GENESIS.to_owned();
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let (line, hash) = Entry::seal_line(i as u64 + 1, &prev, &canonical(record));
            prev = hash;
            line
        })
        .collect()
}

fn verify(lines: &[String]) -> Result<u64, Break> {
    let mut verifier = Verifier::from_genesis();
    for (i, line) in lines.iter().enumerate() {
        verifier.push_line(i as u64 + 1, line)?;
    }
    Ok(verifier.checked())
}

fn records() -> Vec<Json> {
    (0..5)
        .map(|i| json!({"decision_id": format!("d{i}"), "decision": "allow", "n": i, "x": {"b": 1, "a": [1.5, null]}}))
        .collect()
}

#[test]
fn canonical_sorts_keys_and_has_no_whitespace() {
    let value = json!({"b": 1, "a": {"d": [true, null, "é\n"], "c": -0.5}});
    assert_eq!(
        canonical(&value),
        r#"{"a":{"c":-0.5,"d":[true,null,"é\n"]},"b":1}"#
    );
}

#[test]
fn an_intact_chain_verifies_and_its_lines_are_canonical() {
    let lines = chain(&records());
    assert_eq!(verify(&lines), Ok(5));
    for line in &lines {
        let parsed: Json = serde_json::from_str(line).unwrap();
        assert_eq!(&canonical(&parsed), line);
    }
}

#[test]
fn a_changed_record_is_named() {
    let mut lines = chain(&records());
    lines[2] = lines[2].replace(r#""decision":"allow""#, r#""decision":"deny""#);
    assert_eq!(verify(&lines), Err(Break::Altered { seq: 3 }));
}

#[test]
fn a_changed_and_resealed_record_breaks_the_next_link() {
    let mut lines = chain(&records());
    let mut entry = Entry::parse(&lines[2]).unwrap();
    entry.record["decision"] = json!("deny");
    let (line, _) = Entry::seal_line(entry.seq, &entry.prev_hash, &canonical(&entry.record));
    lines[2] = line;
    assert_eq!(verify(&lines), Err(Break::Unlinked { seq: 4 }));
}

#[test]
fn removed_and_reordered_records_are_named() {
    let mut removed = chain(&records());
    removed.remove(1);
    assert_eq!(
        verify(&removed),
        Err(Break::Missing {
            expected: 2,
            found: 3
        })
    );
    let mut swapped = chain(&records());
    swapped.swap(1, 3);
    assert_eq!(
        verify(&swapped),
        Err(Break::Missing {
            expected: 2,
            found: 4
        })
    );
}

#[test]
fn a_chain_continues_from_an_anchor() {
    let lines = chain(&records());
    let anchor = Entry::parse(&lines[1]).unwrap().hash;
    let mut verifier = Verifier::from_anchor(3, anchor);
    for (i, line) in lines[2..].iter().enumerate() {
        verifier.push_line(i as u64, line).unwrap();
    }
    assert_eq!(verifier.checked(), 3);
    let mut wrong = Verifier::from_anchor(3, GENESIS.to_owned());
    assert_eq!(
        wrong.push_line(0, &lines[2]),
        Err(Break::Unlinked { seq: 3 })
    );
}

fn arb_json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Json::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..5)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The hand-written string escaping must match serde_json's.
    #[test]
    fn strings_are_escaped_as_serde_json_does(s in "\\PC*|[\\x00-\\x7f]{0,40}") {
        prop_assert_eq!(canonical(&Json::String(s.clone())), serde_json::to_string(&s).unwrap());
    }

    /// The offline verifier re-encodes parsed records: that must give back
    /// exactly the bytes that were hashed, for any record.
    #[test]
    fn canonical_encoding_survives_a_round_trip(value in arb_json()) {
        let encoded = canonical(&value);
        let parsed: Json = serde_json::from_str(&encoded).unwrap();
        prop_assert_eq!(canonical(&parsed), encoded);
    }

    #[test]
    fn sealed_lines_verify(values in prop::collection::vec(arb_json(), 1..6)) {
        let lines = chain(&values);
        prop_assert_eq!(verify(&lines), Ok(values.len() as u64));
    }
}
