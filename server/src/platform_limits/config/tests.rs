use crate::config::tests::{config, refusal};

#[test]
fn platform_overrides_take_the_defaults_for_what_they_leave_out() -> Result<(), String> {
    let config = config(&[
        ("WARDEN_LIMITS_PLATFORM_RATE", "100"),
        (
            "WARDEN_LIMITS_PLATFORM",
            r#"[{ id = "fast", rate = 2000 }, { id = "open", max_in_flight = 0 }]"#,
        ),
    ])?;
    let fast = config.platform_quotas["fast"];
    assert_eq!((fast.rate, fast.max_in_flight), (2000.0, 4096));
    let open = config.platform_quotas["open"];
    assert_eq!((open.rate, open.max_in_flight), (100.0, 0));
    let err = refusal(&[("WARDEN_LIMITS_PLATFORM_BURST", "-1")]);
    assert!(err.contains("limits.platform_burst"), "{err}");
    let err = refusal(&[("WARDEN_LIMITS_PLATFORM", r#"[{ id = "x", burst = -1 }]"#)]);
    assert!(err.contains("limits.platform.burst"), "{err}");
    Ok(())
}
