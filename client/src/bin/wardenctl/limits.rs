//! `wardenctl limits`: the limit and tripwire rules in force, the hottest
//! keys with their usage against max, and resetting a key's usage.

use clap::{Args, Subcommand};
use serde_json::{Map, Value as Json, json};
use warden_client::ClientOptions;
use warden_client::admin::{KillSwitchScope, LimitKeyUsage, LimitRuleInfo, ListLimitsResponse};

use super::{CtlError, admin, table, usage};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct LimitsArgs {
    #[command(subcommand)]
    command: Option<LimitsCommand>,
    /// Only this rule's keys (every rule in force is listed either way).
    #[arg(long)]
    rule: Option<String>,
    /// How many of the hottest keys to show (at most 1000).
    #[arg(long, default_value_t = 20)]
    top: u32,
}

#[derive(Debug, Subcommand)]
pub enum LimitsCommand {
    /// Forget the usage this replica holds for a rule's keys: those with
    /// every value given (needs `incident_responder`; recorded in the audit
    /// chain). In a cluster, reset on every replica.
    Reset(ResetArgs),
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The rule's id, as `wardenctl limits` lists it.
    rule: String,
    /// Keys of this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Keys of this principal id.
    #[arg(long)]
    principal: Option<String>,
    /// Keys of this agent platform.
    #[arg(long)]
    platform: Option<String>,
    /// Keys of this action name (exact, as checks name it).
    #[arg(long)]
    action: Option<String>,
    /// Keys of this resource type.
    #[arg(long)]
    resource_type: Option<String>,
    /// Keys of this resource id.
    #[arg(long)]
    resource: Option<String>,
    /// Keys of this agent session.
    #[arg(long)]
    session: Option<String>,
    /// With no key value given: reset every key of the rule.
    #[arg(long)]
    all: bool,
    /// Why (recorded).
    #[arg(long)]
    reason: String,
}

pub async fn run(
    addr: &str,
    options: ClientOptions,
    args: LimitsArgs,
    json: bool,
) -> Result<(), CtlError> {
    match args.command {
        None => {
            let list = admin(addr, options)
                .await?
                .list_limits(args.rule.as_deref(), args.top)
                .await?;
            if json {
                outln!("{}", list_json(&list));
            } else {
                print_list(&list);
            }
            Ok(())
        }
        Some(LimitsCommand::Reset(reset)) => {
            let key: Vec<(&str, &str)> = [
                ("agent", &reset.agent),
                ("principal", &reset.principal),
                ("platform", &reset.platform),
                ("action", &reset.action),
                ("resource_type", &reset.resource_type),
                ("resource", &reset.resource),
                ("session", &reset.session),
            ]
            .into_iter()
            .filter_map(|(dimension, value)| value.as_deref().map(|v| (dimension, v)))
            .collect();
            // Resetting a whole rule loosens every agent's budget at once;
            // make the operator say so rather than forget a flag.
            if key.is_empty() && !reset.all {
                return Err(usage(
                    "no key given (--agent, --principal, …); pass --all to reset every key of the rule",
                ));
            }
            if !key.is_empty() && reset.all {
                return Err(usage("--all resets every key; give it without key values"));
            }
            let keys_reset = admin(addr, options)
                .await?
                .reset_limit_key(&reset.rule, &key, &reset.reason)
                .await?;
            if json {
                let key: Map<String, Json> = key
                    .iter()
                    .map(|(d, v)| ((*d).to_owned(), json!(v)))
                    .collect();
                outln!(
                    "{}",
                    json!({"rule": reset.rule, "key": key, "keys_reset": keys_reset})
                );
            } else {
                let which = if key.is_empty() {
                    "every key".to_owned()
                } else {
                    pairs(key.iter().copied())
                };
                outln!(
                    "reset {keys_reset} {} of rule {} ({which})",
                    if keys_reset == 1 { "key" } else { "keys" },
                    reset.rule
                );
            }
            Ok(())
        }
    }
}

fn pairs<'a>(parts: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    parts
        .map(|(d, v)| format!("{d}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn key_text(usage: &LimitKeyUsage) -> String {
    pairs(
        usage
            .key
            .iter()
            .map(|p| (p.dimension.as_str(), p.value.as_str())),
    )
}

fn match_fields(scope: Option<&KillSwitchScope>) -> Vec<(&'static str, String)> {
    let Some(scope) = scope else {
        return Vec::new();
    };
    [
        ("platform", &scope.platform),
        ("agent_id", &scope.agent_id),
        ("principal_id", &scope.principal_id),
        ("action", &scope.action),
        ("resource_type", &scope.resource_type),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| (name, value.clone()))
    .collect()
}

/// `90s`, `5m`, `1h`, `30d`: windows as bundles write them.
fn duration_text(seconds: u64) -> String {
    match seconds {
        0 => "0s".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn percent(used: f64, max: f64) -> String {
    if max > 0.0 {
        format!("{:.0}%", used / max * 100.0)
    } else {
        "-".into()
    }
}

fn rule_json(rule: &LimitRuleInfo) -> Json {
    let matcher: Map<String, Json> = match_fields(rule.r#match.as_ref())
        .into_iter()
        .map(|(name, value)| (name.to_owned(), json!(value)))
        .collect();
    let mut out = json!({
        "id": rule.id,
        "kind": rule.kind,
        "match": matcher,
        "per": rule.per,
        "window_seconds": rule.window_seconds,
        "max": rule.max,
    });
    if let Some(out) = out.as_object_mut() {
        if rule.kind == "tripwire" {
            out.insert("threshold".into(), json!(rule.max));
            out.insert(
                "switch".into(),
                json!({"mode": rule.switch_mode, "ttl_seconds": rule.switch_ttl_seconds}),
            );
            out.insert(
                "count".into(),
                json!({"outcomes": rule.count_outcomes, "reasons": rule.count_reasons}),
            );
        } else {
            out.insert("sum".into(), json!(rule.sum));
            out.insert("on_exceed".into(), json!(rule.on_exceed));
            out.insert("expose".into(), json!(rule.expose));
        }
    }
    out
}

fn key_json(usage: &LimitKeyUsage) -> Json {
    let key: Map<String, Json> = usage
        .key
        .iter()
        .map(|p| (p.dimension.clone(), json!(p.value)))
        .collect();
    json!({
        "rule": usage.rule,
        "key": key,
        "used": usage.used,
        "max": usage.max,
        "tripwire": usage.tripwire,
        "fired_switch_id": usage.fired_switch_id,
    })
}

fn list_json(list: &ListLimitsResponse) -> Json {
    json!({
        "policy_revision": list.policy_revision,
        "keys_tracked": list.keys_tracked,
        "max_keys": list.max_keys,
        "rules": list.rules.iter().map(rule_json).collect::<Vec<_>>(),
        "keys": list.keys.iter().map(key_json).collect::<Vec<_>>(),
    })
}

fn print_list(list: &ListLimitsResponse) {
    let plural = |n: u64, one: &str| match n {
        1 => format!("1 {one}"),
        n => format!("{n} {one}s"),
    };
    outln!(
        "policy {}: {}; {} tracked of {}",
        list.policy_revision,
        plural(list.rules.len() as u64, "rule"),
        plural(list.keys_tracked, "key"),
        list.max_keys
    );
    outln!();
    let rows: Vec<Vec<String>> = list
        .rules
        .iter()
        .map(|rule| {
            let matcher = match_fields(rule.r#match.as_ref())
                .into_iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>();
            let effect = if rule.kind == "tripwire" {
                let mut counts: Vec<&str> =
                    rule.count_outcomes.iter().map(String::as_str).collect();
                counts.extend(rule.count_reasons.iter().map(String::as_str));
                format!(
                    "{} for {}{}",
                    rule.switch_mode,
                    duration_text(rule.switch_ttl_seconds),
                    if counts.is_empty() {
                        String::new()
                    } else {
                        format!("; counts {}", counts.join(" "))
                    }
                )
            } else {
                let mut effect = rule.on_exceed.clone();
                if !rule.sum.is_empty() {
                    effect.push_str(&format!("; sums {}", rule.sum));
                }
                if rule.expose {
                    effect.push_str("; exposed");
                }
                effect
            };
            vec![
                rule.id.clone(),
                rule.kind.clone(),
                if matcher.is_empty() {
                    "*".into()
                } else {
                    matcher.join(" ")
                },
                rule.per.join(","),
                duration_text(rule.window_seconds),
                rule.max.to_string(),
                effect,
            ]
        })
        .collect();
    table(
        &["RULE", "KIND", "MATCH", "PER", "WINDOW", "MAX", "EFFECT"],
        &rows,
    );
    outln!();
    let rows: Vec<Vec<String>> = list
        .keys
        .iter()
        .map(|usage| {
            vec![
                usage.rule.clone(),
                key_text(usage),
                usage.used.to_string(),
                usage.max.to_string(),
                percent(usage.used, usage.max),
                if usage.fired_switch_id.is_empty() {
                    "-".into()
                } else {
                    usage.fired_switch_id.clone()
                },
            ]
        })
        .collect();
    table(&["RULE", "KEY", "USED", "MAX", "%", "FIRED"], &rows);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_shares_read_as_people_write_them() {
        assert_eq!(duration_text(3600), "1h");
        assert_eq!(duration_text(300), "5m");
        assert_eq!(duration_text(90), "90s");
        assert_eq!(duration_text(30 * 86_400), "30d");
        assert_eq!(percent(2.0, 3.0), "67%");
        assert_eq!(percent(1.0, 0.0), "-");
    }
}
