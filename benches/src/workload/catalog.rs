//! The vocabulary generated organisations are made of: resource types and
//! their actions, departments, teams and agent templates.

/// Resource types with the concrete actions that apply to them.
pub(super) const CATALOG: &[(&str, &[&str])] = &[
    (
        "document",
        &[
            "documents.read",
            "documents.write",
            "documents.search",
            "documents.share",
            "documents.delete",
        ],
    ),
    (
        "report",
        &["reports.read", "reports.export", "reports.share"],
    ),
    (
        "expense",
        &["expenses.read", "expenses.submit", "expenses.approve"],
    ),
    (
        "invoice",
        &["invoices.read", "invoices.approve", "invoices.delete"],
    ),
    (
        "ticket",
        &[
            "tickets.read",
            "tickets.create",
            "tickets.update",
            "tickets.close",
        ],
    ),
    ("repository", &["repos.read", "repos.push", "repos.merge"]),
    ("deployment", &["deployments.read", "deployments.create"]),
    (
        "crm_record",
        &[
            "crm.records.read",
            "crm.records.update",
            "crm.records.delete",
        ],
    ),
    ("mailbox", &["email.read", "email.send"]),
    (
        "calendar",
        &["calendar.read", "calendar.create", "calendar.delete"],
    ),
    (
        "role",
        &[
            "permissions.grant",
            "permissions.revoke",
            "iam.roles.assign",
        ],
    ),
    ("account", &["accounts.read", "accounts.create"]),
    ("dataset", &["datasets.read", "datasets.export"]),
    ("contract", &["contracts.read", "contracts.comment"]),
    ("ledger", &["ledger.read", "ledger.post"]),
    ("alert", &["alerts.read", "alerts.ack"]),
];

/// Agent kinds: name, home platform, grants.
pub(super) const AGENTS: &[(&str, &str, &[&str])] = &[
    (
        "expense-assistant",
        "copilot-studio",
        &["expenses.*", "invoices.read", "reports.read"],
    ),
    (
        "doc-summarizer",
        "internal-chat",
        &["documents.read", "documents.search"],
    ),
    (
        "sales-assistant",
        "agentforce",
        &["crm.*", "email.send", "documents.read", "documents.share"],
    ),
    (
        "it-helpdesk",
        "support-desk",
        &["tickets.*", "accounts.read", "iam.roles.assign"],
    ),
    (
        "release-bot",
        "ci-agents",
        &["repos.read", "repos.merge", "deployments.*"],
    ),
    (
        "security-triage",
        "support-desk",
        &["alerts.*", "tickets.create", "accounts.read"],
    ),
    (
        "data-analyst",
        "internal-chat",
        &["datasets.read", "reports.*"],
    ),
    (
        "calendar-assistant",
        "copilot-studio",
        &["calendar.*", "email.read"],
    ),
    (
        "legal-review",
        "internal-chat",
        &["contracts.*", "documents.read"],
    ),
    (
        "finance-close",
        "copilot-studio",
        &["ledger.*", "invoices.*", "reports.export"],
    ),
    (
        "hr-onboarding",
        "internal-chat",
        &[
            "accounts.create",
            "permissions.grant",
            "calendar.create",
            "documents.write",
        ],
    ),
    (
        "access-admin",
        "support-desk",
        &["permissions.*", "iam.*", "accounts.*"],
    ),
];

/// What a group may do: action patterns by resource type.
type Rights = &'static [(&'static str, &'static [&'static str])];

/// Departments: name and what every member may do.
pub(super) const DEPARTMENTS: &[(&str, Rights)] = &[
    (
        "engineering",
        &[
            ("repository", &["repos.*"]),
            ("deployment", &["deployments.read"]),
            ("document", &["documents.read", "documents.search"]),
            ("ticket", &["tickets.*"]),
        ],
    ),
    (
        "finance",
        &[
            ("expense", &["expenses.*"]),
            ("invoice", &["invoices.read", "invoices.approve"]),
            ("ledger", &["ledger.*"]),
            ("report", &["reports.*"]),
        ],
    ),
    (
        "legal",
        &[
            ("contract", &["contracts.*"]),
            ("document", &["documents.*"]),
        ],
    ),
    (
        "sales",
        &[
            ("crm_record", &["crm.records.read", "crm.records.update"]),
            ("mailbox", &["email.*"]),
            ("document", &["documents.read", "documents.share"]),
        ],
    ),
    (
        "support",
        &[
            ("ticket", &["tickets.*"]),
            ("account", &["accounts.read"]),
            ("crm_record", &["crm.records.read"]),
        ],
    ),
    (
        "it-ops",
        &[
            ("account", &["accounts.*"]),
            ("role", &["permissions.*", "iam.*"]),
            ("alert", &["alerts.*"]),
            ("ticket", &["tickets.*"]),
        ],
    ),
    (
        "security",
        &[
            ("alert", &["alerts.*"]),
            ("role", &["permissions.revoke"]),
            ("account", &["accounts.read"]),
        ],
    ),
    (
        "data",
        &[
            ("dataset", &["datasets.*"]),
            ("report", &["reports.read", "reports.export"]),
        ],
    ),
    (
        "hr",
        &[
            ("account", &["accounts.create", "accounts.read"]),
            ("calendar", &["calendar.*"]),
            ("document", &["documents.*"]),
        ],
    ),
    (
        "marketing",
        &[
            (
                "document",
                &["documents.read", "documents.write", "documents.share"],
            ),
            ("report", &["reports.read"]),
        ],
    ),
    (
        "executive",
        &[
            ("report", &["reports.*"]),
            ("document", &["documents.read"]),
            ("ledger", &["ledger.read"]),
        ],
    ),
    (
        "product",
        &[
            ("document", &["documents.*"]),
            ("ticket", &["tickets.read", "tickets.create"]),
            ("dataset", &["datasets.read"]),
        ],
    ),
];

pub(super) const FIRST: &[&str] = &[
    "amelia", "oliver", "isla", "noah", "ava", "liam", "mia", "lucas", "sofia", "mateo", "chloe",
    "arjun", "priya", "wei", "mei", "kenji", "yuki", "fatima", "omar", "leila", "hamza", "zara",
    "diego", "lucia", "ingrid", "lars", "freya", "nils", "chiara", "marco", "elena", "dmitri",
    "olga", "kwame", "ama", "tunde", "ngozi", "sipho", "thandi", "rahul", "ananya", "hiroshi",
    "sakura", "jae", "minji", "pedro", "beatriz", "sean",
];
pub(super) const LAST: &[&str] = &[
    "hughes",
    "patel",
    "nguyen",
    "garcia",
    "kim",
    "okafor",
    "muller",
    "rossi",
    "silva",
    "tanaka",
    "cohen",
    "novak",
    "jensen",
    "kowalski",
    "fernandez",
    "haddad",
    "mensah",
    "dubois",
    "larsen",
    "ivanova",
    "chen",
    "singh",
    "obi",
    "walsh",
    "moreau",
    "schmidt",
    "yamamoto",
    "costa",
    "eriksson",
    "bianchi",
    "ahmed",
    "murphy",
];
pub(super) const TITLES: &[&str] = &[
    "engineer",
    "analyst",
    "manager",
    "director",
    "specialist",
    "associate",
    "lead",
    "architect",
];
pub(super) const LOCATIONS: &[&str] = &[
    "london",
    "berlin",
    "new-york",
    "singapore",
    "sao-paulo",
    "toronto",
    "bangalore",
    "sydney",
];
pub(super) const TEAMS: &[&str] = &[
    "platform",
    "payments",
    "emea",
    "apac",
    "growth",
    "infra",
    "compliance",
    "oncall",
];
