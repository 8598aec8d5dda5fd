//! The OpenID AuthZEN working group's certification scenario for
//! Authorization API 1.0 PDPs (`certification/authorization-api-1_0-scenario.md`
//! in openid/authzen), run against the real binary serving
//! `examples/authzen-certification` as its README does: every level (Basic,
//! Batch, Search, Discovery; Core and Properties) and the transport
//! requirements, as the harness would send them.
//!
//! The scenario is a table of cases, each named by its id in the document
//! (`c-2-2-1`, …; a suffix tells apart the requests one id holds), with the
//! document's exact request body, the status it expects, the decisions it
//! validates and the structure it checks. Every failing case is reported by
//! id, all at once. Like the harness, the runner first reads the PDP
//! metadata (`c-6`) and calls the endpoints it names.
//!
//! The table runs twice: over plain HTTP with `Authorization: undefined` on
//! every request (what the harness sends when given no token; Warden in open
//! mode ignores it), and over HTTPS (`c-5`: the harness speaks HTTPS, and the
//! metadata's URLs must then be HTTPS URLs).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use serde_json::{Value, json};
use warden_e2e::pki::Authority;
use warden_e2e::process::{Warden, WardenBuilder, binaries};
use warden_e2e::{HttpResponse, TlsClient, http_request, https_request, repo_root};

const EXAMPLE: &str = "examples/authzen-certification";

fn example(name: &str) -> String {
    repo_root().join(EXAMPLE).join(name).display().to_string()
}

/// The example's bundle and directory, on `builder`'s configuration.
fn example_data(builder: WardenBuilder) -> WardenBuilder {
    builder
        .arg("--bundle")
        .arg(example("policy"))
        .arg("--identity")
        .arg(example("identity.json"))
        .arg("--entitlements")
        .arg(example("entitlements.json"))
}

// ---------------------------------------------------------------------------
// The harness's side: where the PDP is and how to reach it.

/// The PDP under test as the harness sees it: a base URL, and how to send.
struct Pdp<'a> {
    addr: SocketAddr,
    /// `None` for plain HTTP.
    tls: Option<TlsClient<'a>>,
    /// `Authorization` sent with every request.
    authorization: Option<&'static str>,
}

impl Pdp<'_> {
    fn base(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> HttpResponse {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if let Some(authorization) = self.authorization {
            all.push(("Authorization", authorization));
        }
        match &self.tls {
            None => http_request(self.addr, method, path, &all, body),
            Some(tls) => https_request(self.addr, tls, method, path, &all, body)
                .unwrap_or_else(|e| panic!("{method} {path} over TLS: {e}")),
        }
    }
}

/// The five APIs, by the metadata key that names each and its default path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Api {
    Evaluation,
    Evaluations,
    SearchSubject,
    SearchResource,
    SearchAction,
}

impl Api {
    const ALL: [Api; 5] = [
        Api::Evaluation,
        Api::Evaluations,
        Api::SearchSubject,
        Api::SearchResource,
        Api::SearchAction,
    ];

    fn metadata_key(self) -> &'static str {
        match self {
            Api::Evaluation => "access_evaluation_endpoint",
            Api::Evaluations => "access_evaluations_endpoint",
            Api::SearchSubject => "search_subject_endpoint",
            Api::SearchResource => "search_resource_endpoint",
            Api::SearchAction => "search_action_endpoint",
        }
    }

    /// The default path (`c-6-6`).
    fn default_path(self) -> &'static str {
        match self {
            Api::Evaluation => "/access/v1/evaluation",
            Api::Evaluations => "/access/v1/evaluations",
            Api::SearchSubject => "/access/v1/search/subject",
            Api::SearchResource => "/access/v1/search/resource",
            Api::SearchAction => "/access/v1/search/action",
        }
    }
}

/// The path of each API, as the metadata names it.
type Endpoints = BTreeMap<Api, String>;

// ---------------------------------------------------------------------------
// The table.

/// What a search returns: entities of a type, or action names.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Entity(&'static str),
    Action,
}

/// What a case expects.
#[derive(Debug, Clone)]
enum Expect {
    /// 200 and a boolean `decision`; its value where the document validates
    /// it (a fixture decision).
    Decision(Option<bool>),
    /// 200 and one boolean decision per item, in request order; the values
    /// the document validates.
    Decisions(Vec<Option<bool>>),
    /// 200 and a `results` array of `kind`.
    Results {
        kind: Kind,
        /// What the document requires among the results (`S1`–`S6`).
        includes: &'static [&'static str],
        /// What this example's fixture answers, exactly (not the harness's
        /// check: the scenario permits more).
        exactly: Option<&'static [&'static str]>,
        /// A case whose result set this one must equal ("identical to").
        same_as: Option<&'static str>,
    },
    /// This status, and nothing else checked but the request id.
    Status(u16),
}

enum Body {
    /// JSON, sent as `application/json`.
    Json(Value),
    /// Bytes, with this `Content-Type` (or none).
    Raw(Option<&'static str>, &'static [u8]),
}

struct Case {
    id: &'static str,
    api: Api,
    body: Body,
    /// Whether to send `X-Request-ID` (and expect it back).
    request_id: bool,
    /// How many times to send it; every answer must be the same (`c-2-6`).
    times: usize,
    expect: Expect,
}

fn case(id: &'static str, api: Api, body: Value, expect: Expect) -> Case {
    Case {
        id,
        api,
        body: Body::Json(body),
        request_id: true,
        times: 1,
        expect,
    }
}

fn raw(
    id: &'static str,
    api: Api,
    content_type: Option<&'static str>,
    body: &'static [u8],
) -> Case {
    Case {
        id,
        api,
        body: Body::Raw(content_type, body),
        request_id: true,
        times: 1,
        expect: Expect::Status(400),
    }
}

impl Case {
    fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn without_request_id(mut self) -> Self {
        self.request_id = false;
        self
    }
}

fn decision(value: bool) -> Expect {
    Expect::Decision(Some(value))
}

fn decisions(values: &[Option<bool>]) -> Expect {
    Expect::Decisions(values.to_vec())
}

fn users(
    includes: &'static [&'static str],
    exactly: &'static [&'static str],
    same_as: Option<&'static str>,
) -> Expect {
    Expect::Results {
        kind: Kind::Entity("user"),
        includes,
        exactly: Some(exactly),
        same_as,
    }
}

fn records(
    includes: &'static [&'static str],
    exactly: &'static [&'static str],
    same_as: Option<&'static str>,
) -> Expect {
    Expect::Results {
        kind: Kind::Entity("record"),
        includes,
        exactly: Some(exactly),
        same_as,
    }
}

fn actions(
    includes: &'static [&'static str],
    exactly: &'static [&'static str],
    same_as: Option<&'static str>,
) -> Expect {
    Expect::Results {
        kind: Kind::Action,
        includes,
        exactly: Some(exactly),
        same_as,
    }
}

fn empty(kind: Kind) -> Expect {
    Expect::Results {
        kind,
        includes: &[],
        exactly: Some(&[]),
        same_as: None,
    }
}

const BAD: Expect = Expect::Status(400);

/// The context the document's `…with context` cases send.
fn context() -> Value {
    json!({"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"})
}

/// Every case of the scenario, in the document's order.
fn scenario() -> Vec<Case> {
    use Api::*;
    let alice = json!({"type": "user", "id": "alice"});
    let bob = json!({"type": "user", "id": "bob"});
    let bob_admin = json!({"type": "user", "id": "bob", "properties": {"role": "admin"}});
    let read = json!({"name": "read"});
    let write = json!({"name": "write"});
    let record_1 = json!({"type": "record", "id": "record-1"});
    let record_2 = json!({"type": "record", "id": "record-2"});
    let archived_2 =
        json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
    let alice_reads_1 = json!({"subject": alice, "action": read, "resource": record_1});
    let bob_writes_1 = json!({"subject": bob, "action": write, "resource": record_1});
    // The Subject Search of c-4-2-1, c-4-5 and c-4-6-2 differ only in type.
    let subject_search =
        |kind: &str| json!({"subject": {"type": kind}, "action": read, "resource": record_1});
    let with = |body: &Value, key: &str, value: Value| {
        let mut body = body.clone();
        body[key] = value;
        body
    };

    vec![
        // --- Basic Core: c-2-2 request acceptance.
        case("c-2-2-1", Evaluation, alice_reads_1.clone(), decision(true)),
        case("c-2-2-2", Evaluation, bob_writes_1.clone(), decision(false)),
        case(
            "c-2-2-3",
            Evaluation,
            with(&alice_reads_1, "context", context()),
            decision(true),
        ),
        // --- Basic Properties.
        case(
            "c-2-2-4",
            Evaluation,
            json!({"subject": alice, "action": write, "resource": archived_2}),
            decision(false),
        ),
        case(
            "c-2-2-5",
            Evaluation,
            json!({"subject": bob_admin, "action": write, "resource": archived_2}),
            decision(true),
        ),
        case(
            "c-2-2-6",
            Evaluation,
            json!({"subject": alice, "action": {"name": "delete", "properties": {"soft": true}}, "resource": record_1}),
            decision(true),
        ),
        case(
            "c-2-2-7",
            Evaluation,
            json!({"subject": alice, "action": {"name": "delete", "properties": {"soft": false}}, "resource": record_1}),
            decision(false),
        ),
        // --- Basic Core, continued.
        case(
            "c-2-2-8",
            Evaluation,
            json!({
                "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
                "action": {"name": "read", "properties": {"method": "GET"}},
                "resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}}
            }),
            decision(true),
        ),
        case(
            "c-2-2-9",
            Evaluation,
            with(
                &with(&alice_reads_1, "foo", json!("bar")),
                "futureField",
                json!({"nested": true}),
            ),
            decision(true),
        ),
        // c-2-3 (decision is a boolean, context an object) is checked on
        // every decision answered; c-2-4: error handling.
        case(
            "c-2-4-1 (missing subject)",
            Evaluation,
            json!({"action": read, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-1 (missing action)",
            Evaluation,
            json!({"subject": alice, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-1 (missing resource)",
            Evaluation,
            json!({"subject": alice, "action": read}),
            BAD,
        ),
        case(
            "c-2-4-2 (subject missing type)",
            Evaluation,
            json!({"subject": {"id": "alice"}, "action": read, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-2 (subject missing id)",
            Evaluation,
            json!({"subject": {"type": "user"}, "action": read, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-2 (action missing name)",
            Evaluation,
            json!({"subject": alice, "action": {}, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-2 (resource missing type)",
            Evaluation,
            json!({"subject": alice, "action": read, "resource": {"id": "record-1"}}),
            BAD,
        ),
        case(
            "c-2-4-2 (resource missing id)",
            Evaluation,
            json!({"subject": alice, "action": read, "resource": {"type": "record"}}),
            BAD,
        ),
        raw(
            "c-2-4-3 (text/plain)",
            Evaluation,
            Some("text/plain"),
            br#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}"#,
        ),
        raw(
            "c-2-4-3 (no Content-Type)",
            Evaluation,
            None,
            br#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}"#,
        ),
        raw(
            "c-2-4-4",
            Evaluation,
            Some("application/json"),
            br#"{"subject": {"type": "user", "id": "alice"}, "action": {"#,
        ),
        raw("c-2-4-5", Evaluation, Some("application/json"), b""),
        case(
            "c-2-4-6 (subject is a string)",
            Evaluation,
            json!({"subject": "alice", "action": read, "resource": record_1}),
            BAD,
        ),
        case(
            "c-2-4-6 (action.name is a number)",
            Evaluation,
            json!({"subject": alice, "action": {"name": 123}, "resource": record_1}),
            BAD,
        ),
        // c-2-5: X-Request-ID is sent, and checked, on every other case.
        case("c-2-5-1", Evaluation, alice_reads_1.clone(), decision(true)),
        case("c-2-5-2", Evaluation, alice_reads_1.clone(), decision(true)).without_request_id(),
        // c-2-6: idempotency, of a permit and of a deny.
        case("c-2-6 (permit)", Evaluation, alice_reads_1.clone(), decision(true)).times(5),
        case("c-2-6 (deny)", Evaluation, bob_writes_1.clone(), decision(false)).times(5),
        // --- Batch Core: c-3-2.
        case(
            "c-3-2-1",
            Evaluations,
            json!({"subject": alice, "action": read, "evaluations": [{"resource": record_1}, {"resource": record_2}]}),
            decisions(&[None, None]),
        ),
        case(
            "c-3-2-2",
            Evaluations,
            json!({"subject": bob, "resource": record_1, "evaluations": [{"action": read}, {"action": write}]}),
            decisions(&[Some(true), Some(false)]),
        ),
        // --- Batch Properties.
        case(
            "c-3-2-3",
            Evaluations,
            json!({"subject": alice, "action": write, "evaluations": [
                {"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
                {"resource": archived_2},
            ]}),
            decisions(&[Some(true), Some(false)]),
        ),
        case(
            "c-3-2-4",
            Evaluations,
            json!({"action": write, "resource": archived_2, "evaluations": [
                {"subject": alice},
                {"subject": bob_admin},
            ]}),
            decisions(&[Some(false), Some(true)]),
        ),
        // --- Batch Core, continued.
        case(
            "c-3-2-5",
            Evaluations,
            json!({"evaluations": [alice_reads_1, bob_writes_1]}),
            decisions(&[Some(true), Some(false)]),
        ),
        case(
            "c-3-2-6",
            Evaluations,
            json!({
                "subject": alice,
                "action": read,
                "context": {"time": "2025-06-27T18:03-07:00"},
                "evaluations": [
                    {"resource": record_1},
                    {"resource": record_2, "context": {"time": "2025-06-27T19:00-07:00", "source": "batch-override"}},
                ]
            }),
            decisions(&[None, None]),
        ),
        // --- Batch Properties, continued.
        case(
            "c-3-2-7",
            Evaluations,
            json!({
                "subject": alice,
                "action": write,
                "resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}},
                "evaluations": [{}, {"resource": archived_2}]
            }),
            decisions(&[Some(true), Some(false)]),
        ),
        // c-3-3 (length, order, a decision in each, no top-level decision)
        // is checked on every batch answered; here with four items whose
        // answers alternate, so that any reordering shows.
        case(
            "c-3-3",
            Evaluations,
            json!({"subject": alice, "resource": record_1, "evaluations": [
                {"action": read},
                {"subject": bob, "action": write},
                {"action": {"name": "delete", "properties": {"soft": true}}},
                {"action": {"name": "delete", "properties": {"soft": false}}},
            ]}),
            decisions(&[Some(true), Some(false), Some(true), Some(false)]),
        ),
        // c-3-4: error handling.
        case(
            "c-3-4-1",
            Evaluations,
            json!({
                "subject": alice,
                "action": read,
                "options": {"evaluations_semantic": "execute_all"},
                "evaluations": [{"resource": record_1}, {}]
            }),
            decisions(&[Some(true), Some(false)]),
        ),
        case("c-3-4-2", Evaluations, alice_reads_1.clone(), decision(true)),
        case(
            "c-3-4-3",
            Evaluations,
            with(&alice_reads_1, "evaluations", json!([])),
            decision(true),
        ),
        // --- Search Core: c-4-2 Subject Search (S1).
        case(
            "c-4-2-1",
            SearchSubject,
            subject_search("user"),
            users(&["alice", "bob"], &["alice", "bob"], None),
        ),
        case(
            "c-4-2-2",
            SearchSubject,
            with(&subject_search("user"), "context", context()),
            users(&["alice", "bob"], &["alice", "bob"], Some("c-4-2-1")),
        ),
        case(
            "c-4-2-3",
            SearchSubject,
            json!({"subject": alice, "action": read, "resource": record_1}),
            users(&["alice", "bob"], &["alice", "bob"], Some("c-4-2-1")),
        ),
        // --- Search Properties (S4).
        case(
            "c-4-2-4",
            SearchSubject,
            json!({"subject": {"type": "user"}, "action": write, "resource": archived_2}),
            users(&["bob"], &["bob"], None),
        ),
        // --- Search Core: c-4-3 Resource Search (S2).
        case(
            "c-4-3-1",
            SearchResource,
            json!({"subject": alice, "action": read, "resource": {"type": "record"}}),
            records(&["record-1"], &["record-1", "record-2"], None),
        ),
        case(
            "c-4-3-2",
            SearchResource,
            json!({"subject": alice, "action": read, "resource": {"type": "record"}, "context": context()}),
            records(&["record-1"], &["record-1", "record-2"], Some("c-4-3-1")),
        ),
        case(
            "c-4-3-3",
            SearchResource,
            json!({"subject": alice, "action": read, "resource": record_1}),
            records(&["record-1"], &["record-1", "record-2"], Some("c-4-3-1")),
        ),
        // --- Search Properties (S5).
        case(
            "c-4-3-4",
            SearchResource,
            json!({"subject": bob_admin, "action": write, "resource": {"type": "record"}}),
            records(&["record-2"], &["record-2"], None),
        ),
        // --- Search Core: c-4-4 Action Search (S3).
        case(
            "c-4-4-1",
            SearchAction,
            json!({"subject": alice, "resource": record_1}),
            actions(&["read", "write"], &["read", "write"], None),
        ),
        case(
            "c-4-4-2",
            SearchAction,
            json!({"subject": alice, "resource": record_1, "context": context()}),
            actions(&["read", "write"], &["read", "write"], Some("c-4-4-1")),
        ),
        // --- Search Properties (S6).
        case(
            "c-4-4-3",
            SearchAction,
            json!({"subject": bob_admin, "resource": archived_2}),
            actions(&["write"], &["read", "write"], None),
        ),
        // c-4-5 (pagination) runs after the table: it follows tokens.
        // c-4-6: empty results, for an unknown identifier and an unknown
        // type, on each of the three endpoints.
        case(
            "c-4-6-1",
            SearchAction,
            json!({"subject": {"type": "user", "id": "nonexistent-user"}, "resource": record_1}),
            empty(Kind::Action),
        ),
        case(
            "c-4-6-1 (subject search)",
            SearchSubject,
            json!({"subject": {"type": "user"}, "action": read, "resource": {"type": "record", "id": "nonexistent-record"}}),
            empty(Kind::Entity("user")),
        ),
        case(
            "c-4-6-1 (resource search)",
            SearchResource,
            json!({"subject": {"type": "user", "id": "nonexistent-user"}, "action": read, "resource": {"type": "record"}}),
            empty(Kind::Entity("record")),
        ),
        case(
            "c-4-6-2",
            SearchSubject,
            subject_search("spaceship"),
            empty(Kind::Entity("spaceship")),
        ),
        case(
            "c-4-6-2 (resource search)",
            SearchResource,
            json!({"subject": alice, "action": read, "resource": {"type": "spaceship"}}),
            empty(Kind::Entity("spaceship")),
        ),
        case(
            "c-4-6-2 (action search)",
            SearchAction,
            json!({"subject": alice, "resource": {"type": "spaceship", "id": "record-1"}}),
            empty(Kind::Action),
        ),
        // c-4-7: search error handling.
        case(
            "c-4-7-1 (subject search, missing action)",
            SearchSubject,
            json!({"subject": {"type": "user"}, "resource": record_1}),
            BAD,
        ),
        case(
            "c-4-7-1 (resource search, missing subject)",
            SearchResource,
            json!({"action": read, "resource": {"type": "record"}}),
            BAD,
        ),
        case(
            "c-4-7-1 (action search, missing resource)",
            SearchAction,
            json!({"subject": alice}),
            BAD,
        ),
        case(
            "c-4-7-2 (subject search, resource missing id)",
            SearchSubject,
            json!({"subject": {"type": "user"}, "action": read, "resource": {"type": "record"}}),
            BAD,
        ),
        case(
            "c-4-7-2 (resource search, subject missing id)",
            SearchResource,
            json!({"subject": {"type": "user"}, "action": read, "resource": {"type": "record"}}),
            BAD,
        ),
        case(
            "c-4-7-2 (action search, subject missing id)",
            SearchAction,
            json!({"subject": {"type": "user"}, "resource": record_1}),
            BAD,
        ),
        // --- c-5: transport. 1 is the HTTPS run; 2 (JSON answers) and 4
        // (X-Request-ID) are checked on every case; 3 is c-2-4 and c-4-7.
        // 5: unknown fields are ignored by every API, not only c-2-2-9's.
        case(
            "c-5-5 (evaluations)",
            Evaluations,
            json!({"futureField": {"nested": true}, "evaluations": [with(&alice_reads_1, "foo", json!("bar"))]}),
            decisions(&[Some(true)]),
        ),
        case(
            "c-5-5 (subject search)",
            SearchSubject,
            with(&subject_search("user"), "futureField", json!({"nested": true})),
            users(&["alice", "bob"], &["alice", "bob"], Some("c-4-2-1")),
        ),
        case(
            "c-5-5 (resource search)",
            SearchResource,
            json!({"subject": alice, "action": read, "resource": {"type": "record"}, "foo": "bar"}),
            records(&["record-1"], &["record-1", "record-2"], Some("c-4-3-1")),
        ),
        case(
            "c-5-5 (action search)",
            SearchAction,
            json!({"subject": alice, "resource": record_1, "foo": "bar"}),
            actions(&["read", "write"], &["read", "write"], Some("c-4-4-1")),
        ),
    ]
    .into_iter()
    .chain(every_endpoint_refuses_what_is_not_json())
    .collect()
}

/// c-2-4-3 to c-2-4-5 (and c-5-1: only `application/json`) on the four
/// other endpoints too: a wrong content type, malformed JSON, an empty body.
fn every_endpoint_refuses_what_is_not_json() -> Vec<Case> {
    const BODY: &[u8] = br#"{"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"}, "resource": {"type": "record", "id": "record-1"}}"#;
    [
        (Api::Evaluations, "evaluations"),
        (Api::SearchSubject, "subject search"),
        (Api::SearchResource, "resource search"),
        (Api::SearchAction, "action search"),
    ]
    .into_iter()
    .flat_map(|(api, name)| {
        let id = |what: &str| -> &'static str { format!("{what} ({name})").leak() };
        [
            raw(id("c-2-4-3"), api, Some("text/plain"), BODY),
            raw(
                id("c-2-4-4"),
                api,
                Some("application/json"),
                b"{\"subject\": ",
            ),
            raw(id("c-2-4-5"), api, Some("application/json"), b""),
        ]
    })
    .collect()
}

// ---------------------------------------------------------------------------
// Checks.

type Check = Result<(), String>;

fn ensure(condition: bool, message: impl FnOnce() -> String) -> Check {
    if condition { Ok(()) } else { Err(message()) }
}

/// c-5-2: a successful answer is JSON, and says so.
fn json_answer(response: &HttpResponse) -> Result<Value, String> {
    let content_type = response.header("content-type").unwrap_or_default();
    ensure(content_type.starts_with("application/json"), || {
        format!("Content-Type is `{content_type}`, not application/json")
    })?;
    serde_json::from_str(&response.body).map_err(|e| format!("not JSON ({e}): {}", response.body))
}

/// c-2-3: a boolean `decision`, and a `context` that is an object if any.
fn decision_of(answer: &Value) -> Result<bool, String> {
    let decision = answer["decision"]
        .as_bool()
        .ok_or_else(|| format!("no boolean `decision` in {answer}"))?;
    if let Some(context) = answer.get("context") {
        ensure(context.is_object(), || {
            format!("`context` is not an object in {answer}")
        })?;
    }
    Ok(decision)
}

fn expect_decision(answer: &Value, expected: Option<bool>) -> Result<Value, String> {
    let decision = decision_of(answer)?;
    ensure(answer.get("evaluations").is_none(), || {
        format!("a single evaluation answered with `evaluations`: {answer}")
    })?;
    if let Some(expected) = expected {
        ensure(decision == expected, || {
            format!("decision {decision}, expected {expected}: {answer}")
        })?;
    }
    Ok(json!(decision))
}

/// c-3-3: as many decisions as items, in order, each a boolean.
fn expect_decisions(answer: &Value, expected: &[Option<bool>]) -> Result<Value, String> {
    let items = answer["evaluations"]
        .as_array()
        .ok_or_else(|| format!("no `evaluations` array in {answer}"))?;
    ensure(items.len() == expected.len(), || {
        format!(
            "{} evaluations answered for {} asked: {answer}",
            items.len(),
            expected.len()
        )
    })?;
    // c-3-3-4: SHOULD be omitted (the harness would ignore it).
    ensure(answer.get("decision").is_none(), || {
        format!("a top-level `decision` beside `evaluations`: {answer}")
    })?;
    let mut got = Vec::new();
    for (index, (item, expected)) in items.iter().zip(expected).enumerate() {
        let decision = decision_of(item).map_err(|e| format!("evaluations[{index}]: {e}"))?;
        if let Some(expected) = expected {
            ensure(decision == *expected, || {
                format!("evaluations[{index}]: decision {decision}, expected {expected}: {answer}")
            })?;
        }
        got.push(decision);
    }
    Ok(json!(got))
}

/// c-4-2 to c-4-4 and c-4-5-3: a `results` array of well-formed entities of
/// the asked type (or of actions), and a well-formed `page` if any. Returns
/// the ids (or names), in order.
fn results_of(answer: &Value, kind: Kind) -> Result<Vec<String>, String> {
    let results = answer["results"]
        .as_array()
        .ok_or_else(|| format!("no `results` array in {answer}"))?;
    let mut found = Vec::new();
    for (index, result) in results.iter().enumerate() {
        let value = match kind {
            Kind::Entity(kind) => {
                let id = result["id"].as_str();
                let of_kind = result["type"].as_str();
                ensure(id.is_some() && of_kind == Some(kind), || {
                    format!("results[{index}] is not a `{kind}` with an id: {result}")
                })?;
                id
            }
            Kind::Action => result["name"].as_str(),
        }
        .ok_or_else(|| format!("results[{index}] has no name: {result}"))?;
        found.push(value.to_owned());
    }
    if let Some(page) = answer.get("page") {
        ensure(page.is_object(), || {
            format!("`page` is not an object: {answer}")
        })?;
        ensure(page["next_token"].is_string(), || {
            format!("`page.next_token` is not a string: {answer}")
        })?;
        if let Some(count) = page.get("count") {
            ensure(count.as_u64() == Some(found.len() as u64), || {
                format!("`page.count` is not the number of results: {answer}")
            })?;
        }
        if let Some(total) = page.get("total") {
            ensure(total.is_u64(), || {
                format!("`page.total` is not a number: {answer}")
            })?;
        }
    }
    Ok(found)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn expect_results(
    answer: &Value,
    kind: Kind,
    includes: &[&str],
    exactly: Option<&[&str]>,
    same_as: Option<&BTreeSet<String>>,
) -> Result<Value, String> {
    let found = results_of(answer, kind)?;
    let distinct: BTreeSet<String> = found.iter().cloned().collect();
    ensure(distinct.len() == found.len(), || {
        format!("results repeat an entity: {found:?}")
    })?;
    // Unpaged: the whole search on one page.
    ensure(
        answer["page"]["next_token"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        || format!("an unpaged search left a next_token: {answer}"),
    )?;
    for name in includes {
        ensure(distinct.contains(*name), || {
            format!("`{name}` is not among the results {found:?}")
        })?;
    }
    if let Some(same_as) = same_as {
        ensure(&distinct == same_as, || {
            format!("results {distinct:?} differ from {same_as:?}")
        })?;
    }
    if let Some(exactly) = exactly {
        ensure(distinct == set(exactly), || {
            format!("results {distinct:?}; the fixture allows exactly {exactly:?}")
        })?;
    }
    Ok(json!(distinct))
}

// ---------------------------------------------------------------------------
// The runner.

/// What the whole run found wrong, each line naming its case.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn record(&mut self, id: &str, check: Check) {
        if let Err(why) = check {
            self.0.push(format!("{id}: {why}"));
        }
    }

    fn assert_none(&self, run: &str) {
        assert!(
            self.0.is_empty(),
            "{run}: {} case(s) failed:\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// c-6: the metadata, validated as the harness does; the endpoints it
/// names (the defaults of c-6-6 if it cannot be read).
fn discovery(pdp: &Pdp<'_>, failures: &mut Failures) -> Endpoints {
    let base = pdp.base();
    let response = pdp.send("GET", "/.well-known/authzen-configuration", &[], None);
    let defaults = || {
        Api::ALL
            .into_iter()
            .map(|api| (api, api.default_path().to_owned()))
            .collect()
    };
    let metadata = match ensure(response.status == 200, || {
        format!(
            "status {} (c-6-6: 404 fails Discovery): {}",
            response.status, response.body
        )
    })
    .and_then(|()| json_answer(&response))
    {
        Ok(metadata) => metadata,
        Err(why) => {
            failures.record("c-6-2", Err(why));
            return defaults();
        }
    };
    let url = |key: &str| -> Result<String, String> {
        let url = metadata[key]
            .as_str()
            .ok_or_else(|| format!("no `{key}` in {metadata}"))?;
        // A URL of the scheme the harness used (HTTPS over TLS), with no
        // query or fragment.
        ensure(
            url.starts_with(&format!("{base}/")) && !url.contains(['?', '#']),
            || format!("`{key}` is `{url}`, not a URL under {base}"),
        )?;
        Ok(url[base.len()..].to_owned())
    };
    failures.record(
        "c-6-3 (policy_decision_point)",
        ensure(metadata["policy_decision_point"] == json!(base), || {
            format!("`policy_decision_point` is not {base}: {metadata}")
        }),
    );
    let mut endpoints = Endpoints::new();
    for api in Api::ALL {
        // c-6-3 requires the evaluation endpoint; c-6-4 permits the others,
        // and Warden lists all five, at their default paths.
        let id = if api == Api::Evaluation {
            "c-6-3"
        } else {
            "c-6-4"
        };
        let path = url(api.metadata_key()).and_then(|path| {
            ensure(path == api.default_path(), || {
                format!("`{}` is at {path}", api.metadata_key())
            })
            .map(|()| path)
        });
        match path {
            Ok(path) => {
                endpoints.insert(api, path);
            }
            Err(why) => {
                failures.record(id, Err(why));
                endpoints.insert(api, api.default_path().to_owned());
            }
        }
    }
    failures.record(
        "c-6-5 (capabilities)",
        match metadata.get("capabilities") {
            None => Ok(()),
            Some(capabilities) => ensure(
                capabilities
                    .as_array()
                    .is_some_and(|c| c.iter().all(Value::is_string)),
                || format!("`capabilities` is not an array of strings: {capabilities}"),
            ),
        },
    );
    // A signed_metadata would have to be a JWS the harness can verify; Warden
    // signs none.
    failures.record(
        "c-6-5 (signed_metadata)",
        ensure(metadata.get("signed_metadata").is_none(), || {
            format!("unexpected `signed_metadata`: {metadata}")
        }),
    );
    endpoints
}

/// Sends `case` (as often as it says) and checks every answer; returns what
/// it answered, for the cases that must answer the same.
fn run_case(
    pdp: &Pdp<'_>,
    endpoints: &Endpoints,
    index: usize,
    case: &Case,
    answers: &BTreeMap<&'static str, Value>,
) -> Result<Value, String> {
    let path = &endpoints[&case.api];
    let mut previous: Option<Value> = None;
    for round in 0..case.times {
        let request_id = format!("cert-{index}-{round}");
        let mut headers = Vec::new();
        if case.request_id {
            headers.push(("X-Request-ID", request_id.as_str()));
        }
        let bytes;
        let body: &[u8] = match &case.body {
            Body::Json(value) => {
                headers.push(("Content-Type", "application/json"));
                bytes = value.to_string().into_bytes();
                &bytes
            }
            Body::Raw(content_type, bytes) => {
                if let Some(content_type) = content_type {
                    headers.push(("Content-Type", content_type));
                }
                bytes
            }
        };
        let response = pdp.send("POST", path, &headers, Some(body));
        // c-2-5 / c-5-4: the request id comes back, on refusals too.
        if case.request_id {
            ensure(
                response.header("x-request-id") == Some(request_id.as_str()),
                || {
                    format!(
                        "X-Request-ID `{request_id}` not echoed: {:?}",
                        response.headers
                    )
                },
            )?;
        }
        let expected_status = match case.expect {
            Expect::Status(status) => status,
            _ => 200,
        };
        ensure(response.status == expected_status, || {
            format!(
                "POST {path}: status {}, expected {expected_status}: {}",
                response.status, response.body
            )
        })?;
        let answer = match &case.expect {
            Expect::Status(_) => json!(null),
            Expect::Decision(expected) => expect_decision(&json_answer(&response)?, *expected)?,
            Expect::Decisions(expected) => expect_decisions(&json_answer(&response)?, expected)?,
            Expect::Results {
                kind,
                includes,
                exactly,
                same_as,
            } => {
                let same_as = match same_as {
                    None => None,
                    Some(id) => {
                        let earlier = answers
                            .get(id)
                            .ok_or_else(|| format!("{id}, which this must equal, failed"))?;
                        Some(serde_json::from_value(earlier.clone()).unwrap())
                    }
                };
                expect_results(
                    &json_answer(&response)?,
                    *kind,
                    includes,
                    *exactly,
                    same_as.as_ref(),
                )?
            }
        };
        // c-2-6: the same answer each time.
        if let Some(previous) = &previous {
            ensure(previous == &answer, || {
                format!("round {round} answered {answer}, before {previous}")
            })?;
        }
        previous = Some(answer);
    }
    Ok(previous.unwrap_or(Value::Null))
}

/// One search page: the results (checked as `results_of` does) and the
/// `page` object, which must be there.
fn search_page(pdp: &Pdp<'_>, path: &str, body: &Value) -> Result<(Vec<String>, Value), String> {
    let response = pdp.send(
        "POST",
        path,
        &[("Content-Type", "application/json")],
        Some(body.to_string().as_bytes()),
    );
    ensure(response.status == 200, || {
        format!("status {}: {}", response.status, response.body)
    })?;
    let answer = json_answer(&response)?;
    let results = results_of(&answer, Kind::Entity("user"))?;
    let page = answer
        .get("page")
        .cloned()
        .ok_or_else(|| format!("no `page`: {answer}"))?;
    Ok((results, page))
}

/// c-4-5: the Subject Search of c-4-2-1 with `page.limit: 1`, then with the
/// token it returned (c-4-5-2's request has no limit: it gets the rest);
/// and the whole walk at one result a page, which must hold every result
/// of the unpaged search once.
fn pagination(
    pdp: &Pdp<'_>,
    endpoints: &Endpoints,
    unpaged: Option<&Value>,
    failures: &mut Failures,
) {
    let path = &endpoints[&Api::SearchSubject];
    let search = json!({
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"},
    });
    let with_page = |page: Value| {
        let mut body = search.clone();
        body["page"] = page;
        body
    };
    let unpaged: BTreeSet<String> = match unpaged {
        Some(found) => serde_json::from_value(found.clone()).unwrap(),
        None => {
            failures.record("c-4-5", Err("c-4-2-1, the unpaged search, failed".into()));
            return;
        }
    };

    // c-4-5-1 and c-4-5-2, as the document sends them.
    let first =
        search_page(pdp, path, &with_page(json!({"limit": 1}))).and_then(|(found, page)| {
            ensure(found.len() <= 1, || {
                format!("{} results for limit 1", found.len())
            })?;
            let token = page["next_token"].as_str().unwrap_or_default().to_owned();
            // Two users match: a PDP that pages must say there is more.
            ensure(!token.is_empty(), || {
                format!(
                    "one of {} results returned, and no next_token: {page}",
                    unpaged.len()
                )
            })?;
            Ok((found, token))
        });
    let first = match first {
        Ok(first) => first,
        Err(why) => {
            failures.record("c-4-5-1", Err(why));
            return;
        }
    };
    failures.record(
        "c-4-5-2",
        search_page(pdp, path, &with_page(json!({"token": first.1}))).and_then(|(rest, page)| {
            ensure(page["next_token"] == json!(""), || {
                format!("the last page's next_token is not \"\": {page}")
            })?;
            let all: BTreeSet<String> = first.0.iter().chain(&rest).cloned().collect();
            ensure(
                all.len() == first.0.len() + rest.len() && all == unpaged,
                || format!("{:?} then {rest:?}; unpaged: {unpaged:?}", first.0),
            )
        }),
    );

    // The whole walk, one result a page, until the token is empty.
    let walk = (|| {
        let mut seen = Vec::new();
        let mut token = String::new();
        for _ in 0..=unpaged.len() + 1 {
            let mut page = json!({"limit": 1});
            if !token.is_empty() {
                page["token"] = json!(token);
            }
            let (found, page) = search_page(pdp, path, &with_page(page))?;
            ensure(found.len() <= 1, || {
                format!("{} results for limit 1", found.len())
            })?;
            seen.extend(found);
            token = page["next_token"].as_str().unwrap_or_default().to_owned();
            if token.is_empty() {
                let distinct: BTreeSet<String> = seen.iter().cloned().collect();
                ensure(distinct.len() == seen.len(), || {
                    format!("a result on two pages: {seen:?}")
                })?;
                return ensure(distinct == unpaged, || {
                    format!("the pages hold {seen:?}; unpaged: {unpaged:?}")
                });
            }
        }
        Err(format!(
            "still a next_token after {} pages",
            unpaged.len() + 2
        ))
    })();
    failures.record("c-4-5-3 (walk at limit 1)", walk);
}

/// The whole scenario against `pdp`.
fn certify(pdp: &Pdp<'_>, run: &str) {
    let mut failures = Failures::default();
    let endpoints = discovery(pdp, &mut failures);
    let cases = scenario();
    let mut ids = BTreeSet::new();
    for case in &cases {
        assert!(ids.insert(case.id), "two cases are named {}", case.id);
    }
    let mut answers = BTreeMap::new();
    for (index, case) in cases.iter().enumerate() {
        match run_case(pdp, &endpoints, index, case, &answers) {
            Ok(answer) => {
                answers.insert(case.id, answer);
            }
            Err(why) => failures.record(case.id, Err(why)),
        }
    }
    pagination(pdp, &endpoints, answers.get("c-4-2-1"), &mut failures);
    failures.assert_none(run);
    // Every id of the document's test matrix has a case.
    for id in [
        "c-2-2-1", "c-2-2-2", "c-2-2-3", "c-2-2-4", "c-2-2-5", "c-2-2-6", "c-2-2-7", "c-2-2-8",
        "c-2-2-9", "c-2-4-1", "c-2-4-2", "c-2-4-3", "c-2-4-4", "c-2-4-5", "c-2-4-6", "c-2-5-1",
        "c-2-5-2", "c-2-6", "c-3-2-1", "c-3-2-2", "c-3-2-3", "c-3-2-4", "c-3-2-5", "c-3-2-6",
        "c-3-2-7", "c-3-3", "c-3-4-1", "c-3-4-2", "c-3-4-3", "c-4-2-1", "c-4-2-2", "c-4-2-3",
        "c-4-2-4", "c-4-3-1", "c-4-3-2", "c-4-3-3", "c-4-3-4", "c-4-4-1", "c-4-4-2", "c-4-4-3",
        "c-4-6-1", "c-4-6-2", "c-4-7-1", "c-4-7-2", "c-5-5",
    ] {
        assert!(
            ids.iter().any(|case| case.split(' ').next() == Some(id)),
            "no case for {id}"
        );
    }
}

// ---------------------------------------------------------------------------
// The tests.

/// The example exactly as its README serves it, over plain HTTP, called as
/// the harness calls a PDP given no token: `Authorization: undefined`.
#[tokio::test]
async fn the_example_passes_every_level_over_http() {
    let warden = example_data(
        Warden::builder()
            .arg("--config")
            .arg(example("warden.toml")),
    )
    .start()
    .await;
    let pdp = Pdp {
        addr: warden.http_addr.expect("the HTTP listener is on"),
        tls: None,
        authorization: Some("undefined"),
    };
    certify(&pdp, "HTTP");
}

/// c-5-1: the same over HTTPS (the example's configuration plus a server
/// certificate), where every URL in the metadata must be an HTTPS URL.
#[tokio::test]
async fn the_example_passes_every_level_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Authority::new(dir.path(), "ca");
    let server = ca.server("server");
    let config = format!(
        "{}\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        std::fs::read_to_string(example("warden.toml")).unwrap(),
        server.cert.display(),
        server.key.display(),
    );
    let path = dir.path().join("warden.toml");
    std::fs::write(&path, config).unwrap();
    let warden = example_data(
        Warden::builder()
            .arg("--config")
            .arg(path.display().to_string()),
    )
    .start_listening();
    let ca_pem = ca.ca_pem();
    let pdp = Pdp {
        addr: warden.http_addr.expect("the HTTP listener is on"),
        tls: Some(TlsClient {
            ca_pem: &ca_pem,
            identity: None,
            alpn: &[b"http/1.1"],
        }),
        authorization: None,
    };
    // The listener is up; wait until the policy is loaded and it decides.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let tls = pdp.tls.as_ref().unwrap();
    let probe = json!({
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "resource": {"type": "record", "id": "record-1"},
    })
    .to_string();
    loop {
        match https_request(
            pdp.addr,
            tls,
            "POST",
            "/access/v1/evaluation",
            &[("Content-Type", "application/json")],
            Some(probe.as_bytes()),
        ) {
            Ok(response) if response.status == 200 => break,
            other => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "never answered over TLS: {other:?}\n{}",
                    warden.stderr()
                );
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    certify(&pdp, "HTTPS");
}

/// The fixture's bundle passes its own Rego unit tests (`warden test`), one
/// for each of the eight decisions the scenario validates among them.
#[test]
fn the_example_bundle_passes_its_unit_tests() {
    let output = std::process::Command::new(&binaries().warden)
        .arg("test")
        .arg(example("policy"))
        .output()
        .expect("run warden test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    for rule in 1..=8 {
        assert!(
            stdout.lines().any(|line| line.starts_with(&format!(
                "PASS data.authzen_certification.tests.test_rule_{rule}_"
            ))),
            "no passing test of decision rule {rule}:\n{stdout}"
        );
    }
}
