use super::*;

fn check(am: Alertmanager) -> Result<Poster, String> {
    am.check("poca", "node-1".into()).map_err(|e| {
        assert_eq!(e.kind(), ErrorKind::Config);
        e.to_string()
    })
}

#[test]
fn urls_are_checked_and_end_in_the_v2_path() {
    let p = check(Alertmanager::new([
        "http://am-0:9093",
        "https://alerts.example.com/am/",
        "http://127.0.0.1:9093/api/v2/alerts",
    ]))
    .unwrap();
    assert_eq!(
        p.endpoints,
        [
            "http://am-0:9093/api/v2/alerts",
            "https://alerts.example.com/am/api/v2/alerts",
            "http://127.0.0.1:9093/api/v2/alerts",
        ]
    );
    let err = |urls: &[&str]| check(Alertmanager::new(urls.iter().copied())).unwrap_err();
    assert!(err(&[]).contains("no Alertmanager URL"));
    assert!(err(&["am-0:9093"]).contains("\"am-0:9093\" is not an Alertmanager URL"));
    assert!(err(&["ftp://am"]).contains("is not an Alertmanager URL"));
    assert!(err(&["http://am?x=1"]).contains("a query or fragment"));
    let with_password = err(&["http://user:hunter2@am:9093"]);
    assert!(with_password.contains("holds credentials; give them with basic_auth"));
    assert!(!with_password.contains("hunter2"), "{with_password}");
}

#[test]
fn label_names_are_checked_and_the_crates_own_are_refused() {
    let label = |name: &str| check(Alertmanager::new(["http://am"]).label(name, "x"));
    assert!(label("team").is_ok());
    assert!(label("_x9").is_ok());
    for bad in ["", "9lives", "a-b", "é", "__meta"] {
        assert!(label(bad).unwrap_err().contains("is not valid"), "{bad:?}");
    }
    for own in OWN_LABELS {
        assert!(
            label(own).unwrap_err().contains("is set by tracing-email"),
            "{own}"
        );
    }
}

#[test]
fn durations_and_the_certificate_are_checked() {
    let am = || Alertmanager::new(["https://am"]);
    assert!(
        check(am().timeout(Duration::ZERO))
            .unwrap_err()
            .contains("timeout must be")
    );
    assert!(
        check(am().resolve_window(Duration::from_secs(31 * 24 * 3600)))
            .unwrap_err()
            .starts_with("alerts resolve_window: ")
    );
    assert!(
        check(am().root_certificate("not a certificate"))
            .unwrap_err()
            .contains("holds no certificate")
    );
}

#[test]
fn secrets_are_never_in_debug_or_errors() {
    let basic = Alertmanager::new(["http://me:pw-SECRET@am"]).basic_auth("me", "pw-SECRET");
    let bearer = Alertmanager::new(["http://am"]).bearer_token("tok-SECRET");
    for am in [basic.clone(), bearer] {
        let debug = format!("{am:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
    }
    assert!(format!("{basic:?}").contains(r#"basic \"me\":***"#));
    assert!(!check(basic).unwrap_err().contains("SECRET"));
    let broken = check(Alertmanager::new(["https://am"]).bearer_token("tok-SECRET\r\nX: 1"));
    let broken = broken.unwrap_err();
    assert!(
        broken.starts_with("alerts: the bearer token holds a line break"),
        "{broken}"
    );
    assert!(!broken.contains("SECRET"), "{broken}");
    // The header holds the encoded pair, which is cut out of quoted replies.
    let p = check(Alertmanager::new(["https://am"]).basic_auth("me", "pw-SECRET")).unwrap();
    let encoded = crate::redact::base64(b"me:pw-SECRET");
    assert_eq!(p.authorization, Some(format!("Basic {encoded}")));
    let quoted = p
        .redactor
        .quote(format!("no: {encoded} pw-SECRET").as_bytes(), 512, false);
    assert_eq!(quoted, "no: *** ***");
}

#[test]
fn credentials_go_over_http_only_to_loopback() {
    for url in [
        "http://am.example.com:9093",
        "http://10.1.2.3:9093",
        "http://[fe80::1]:9093",
        "http://localhost.example.com",
    ] {
        for am in [
            Alertmanager::new([url]).basic_auth("me", "pw-SECRET"),
            Alertmanager::new(["https://ok.example.com", url]).bearer_token("tok-SECRET"),
        ] {
            let e = check(am).unwrap_err();
            assert!(
                e.starts_with("alerts: refusing to send the Alertmanager ")
                    && e.contains(&format!(
                        "to \"{url}\" over a connection that is not encrypted"
                    ))
                    && e.contains("use https://"),
                "{e}"
            );
            assert!(!e.contains("SECRET"), "{e}");
        }
    }
    for url in [
        "http://127.0.0.1:9093",
        "http://127.8.9.10:9093",
        "http://[::1]:9093",
        "http://[::ffff:127.0.0.1]:9093",
        "http://localhost:9093",
        "http://LOCALHOST:9093",
        "https://am.example.com",
    ] {
        assert!(
            check(Alertmanager::new([url]).basic_auth("me", "pw")).is_ok(),
            "{url}"
        );
        assert!(
            check(Alertmanager::new([url]).bearer_token("t")).is_ok(),
            "{url}"
        );
    }
    // Without credentials, plain HTTP anywhere stays allowed.
    assert!(check(Alertmanager::new(["http://am.example.com:9093"])).is_ok());
}

fn posted(runs: u64, resolved: Option<OffsetDateTime>) -> FiringAlert {
    FiringAlert {
        failure: "f".into(),
        severity: "warning".into(),
        since: OffsetDateTime::UNIX_EPOCH,
        runs,
        resolved,
        labels: BTreeMap::new(),
        last_accepted: None,
        last_post: None,
    }
}

#[test]
fn the_alerts_kept_are_bounded_oldest_resolutions_first() {
    let mut alerts = BTreeMap::new();
    for i in 0..MAX_ALERTS + 5 {
        let resolved =
            (i < 10).then(|| OffsetDateTime::UNIX_EPOCH + time::Duration::hours(i as i64));
        alerts.insert(format!("{i:04}"), posted(2, resolved));
    }
    bound(&mut alerts);
    assert_eq!(alerts.len(), MAX_ALERTS);
    // The five resolutions that ended first went.
    assert!((0..5).all(|i| !alerts.contains_key(&format!("{i:04}"))));
    assert!((5..10).all(|i| alerts.contains_key(&format!("{i:04}"))));
}

#[test]
fn a_state_file_without_alerts_loads_and_one_with_them_round_trips() {
    let old = r#"{"version":2,"generation":3,"pending":[],"dropped":0}"#;
    let state: State = serde_json::from_str(old).unwrap();
    assert!(state.alerts.is_empty());
    // Not written when empty: files of users without Alertmanager are as before.
    assert!(!serde_json::to_string(&state).unwrap().contains("alerts"));
    let mut state = state;
    state.alerts.insert("k".into(), posted(3, None));
    let text = serde_json::to_string(&state).unwrap();
    let back: State = serde_json::from_str(&text).unwrap();
    assert_eq!(back.alerts, state.alerts);
}

#[test]
fn a_state_file_of_an_older_version_loads_its_alerts_without_labels_or_last_post() {
    let old = r#"{"version":2,"alerts":{"k":{"failure":"f","severity":"error",
        "since":"2026-11-22T07:00:00Z","runs":2,"resolved":null}}}"#;
    let state: State = serde_json::from_str(old).unwrap();
    let alert = &state.alerts["k"];
    assert_eq!(
        (alert.runs, alert.labels.len(), alert.last_accepted),
        (2, 0, None)
    );
    assert_eq!(state.alert_post, None);
    let mut state = state;
    state.alert_post = Some(AlertPost {
        at: OffsetDateTime::UNIX_EPOCH,
        firing: 1,
        resolved: 0,
        accepted: 0,
        of: 2,
        error: Some("refused".into()),
    });
    let back: State = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(back.alert_post, state.alert_post);
}

#[test]
fn a_failed_posts_answer_is_kept_without_the_token_and_bounded() {
    let poster = check(
        Alertmanager::new(["http://127.0.0.1:9", "http://127.0.0.1:10"])
            .bearer_token("s3cr3t-t0k3n"),
    )
    .unwrap();
    let now = OffsetDateTime::UNIX_EPOCH;
    let echoed = format!(
        "no Alertmanager accepted the alerts (HTTP 401, replying \"Bearer s3cr3t-t0k3n\nbad\"{})",
        "x".repeat(3000)
    );
    // The answer to a post of two firing alerts and one resolved.
    let settled = |answer| {
        let mut state = State::default();
        let firing = ["a", "b"].map(String::from).into();
        let over = vec![("c".to_owned(), now)];
        let _ = poster.settle(&mut state, (answer, now), (firing, over), BTreeMap::new());
        state.alert_post.unwrap()
    };
    let post = settled(Err(Error::new(ErrorKind::Alertmanager, echoed)));
    let error = post.error.unwrap();
    assert!(!error.contains("s3cr3t"), "{error}");
    assert!(error.contains("Bearer ***"), "{error}");
    assert!(!error.contains('\n') && error.len() <= MAX_ANSWER + '…'.len_utf8());
    assert_eq!(
        (post.firing, post.resolved, post.accepted, post.of),
        (2, 1, 0, 2)
    );
    let post = settled(Ok(1));
    assert_eq!((post.accepted, post.of, post.error), (1, 2, None));
}
