//! The simulation example on one week: the policy that follows failures
//! across runs reports every lasting outage within four runs and sends a
//! small fraction of a count threshold's emails; alone, it reports each
//! streak once.

#[allow(dead_code)]
#[path = "../../examples/simulate.rs"]
mod simulate;

#[test]
fn consecutive_runs_with_a_daily_reminder_reports_outages_with_few_emails() {
    let schedule = simulate::schedule(7 * 24, 11);
    assert!(!schedule.lasting.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let row = |name: &str| {
        let policy = simulate::POLICIES
            .iter()
            .find(|p| p.0 == name)
            .or_else(|| simulate::POLICIES.iter().find(|p| p.0.starts_with(name)))
            .unwrap();
        simulate::replay(&schedule, policy, dir.path())
    };
    let threshold = row("threshold(5");
    let chosen = row("consecutive_runs(4) + repeat_after");
    assert_eq!(chosen.reported, chosen.lasting, "{chosen:?}");
    assert!(chosen.max_runs_to_report.unwrap() <= 4, "{chosen:?}");
    // Short outages of four runs or more are reported too (as noise here):
    // far fewer than the count threshold's.
    assert!(
        chosen.noise * 5 <= threshold.noise.max(1),
        "{chosen:?} vs {threshold:?}"
    );
    assert!(
        chosen.emails * 5 <= threshold.emails,
        "{chosen:?} vs {threshold:?}"
    );
    // consecutive_runs(4) alone: every lasting outage reported within four
    // runs, and at most one email per streak of four runs or more (it used
    // to send one at every run after the fourth: 157 for 30 days).
    let alone = row("consecutive_runs(4)");
    let streaks = simulate::streaks_of_at_least(&schedule, 4);
    assert_eq!(alone.reported, alone.lasting, "{alone:?}");
    assert!(alone.max_runs_to_report.unwrap() <= 4, "{alone:?}");
    assert!(
        (1..=streaks).contains(&alone.emails),
        "{alone:?}: {streaks} streaks"
    );
    // repeat_after only adds reminders (of outages that last a day past
    // their report).
    assert!(chosen.emails >= alone.emails, "{chosen:?} vs {alone:?}");

    // Per record, every failure is an email.
    let per_record = row("batch(1)");
    let failures: usize = schedule
        .fails
        .iter()
        .map(|run| run.iter().filter(|f| **f).count())
        .sum();
    assert_eq!(per_record.emails, failures);
}
