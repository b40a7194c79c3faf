//! Table-driven tests of deadline derivation. Holiday dates come from the State Council notices:
//! - 2025: 国务院办公厅关于2025年部分节假日安排的通知, 国办发明电〔2024〕12号, 2024-11-12.
//!   春节 Jan 28 (Tue)–Feb 4 (Tue) off, make-up working days Jan 26 (Sun) and Feb 8 (Sat);
//!   劳动节 May 1–5, make-up Apr 27 (Sun); 国庆节、中秋节 Oct 1 (Wed)–Oct 8 (Wed) off,
//!   make-up Sep 28 (Sun) and Oct 11 (Sat).
//! - 2026: 国务院办公厅关于2026年部分节假日安排的通知, 国办发明电〔2025〕7号, 2025-11-04.
//!   元旦 Jan 1–3, make-up Jan 4 (Sun); 春节 Feb 15 (Sun)–Feb 23 (Mon) off, make-up Feb 14 (Sat)
//!   and Feb 28 (Sat); 国庆节 Oct 1–7, make-up Sep 20 (Sun) and Oct 10 (Sat).
//! - UK: GOV.UK bank holidays, England and Wales 2025–2026.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use redress_regime::{
    AnomalyKind, Approver, Calendar, CaseClock, CaseStatus, ClockError, ClockEvent,
    ClockEventKind as K, Deadlines, ExtensionContext, LoadError, PauseReason, RefusalReason,
    Regime, Role,
};

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Asia/Shanghai local time (UTC+8, no DST) to UTC.
fn bj(date: &str, h: u32, m: u32) -> DateTime<Utc> {
    let n = d(date).and_hms_opt(h, m, 0).unwrap();
    Utc.from_utc_datetime(&n) - Duration::hours(8)
}

/// Europe/London local time in winter (UTC+0).
fn ldn_winter(date: &str, h: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d(date).and_hms_opt(h, 0, 0).unwrap())
}

fn nfra() -> (Regime, Calendar) {
    let r = Regime::by_name("cn-nfra").unwrap();
    let c = r.default_calendar().unwrap();
    (r, c)
}

fn derive(r: &Regime, c: &Calendar, at: DateTime<Utc>, events: &[ClockEvent]) -> Deadlines {
    CaseClock::new(r, c).unwrap().derive(at, events).unwrap()
}

fn ev(at: DateTime<Utc>, kind: K) -> ClockEvent {
    ClockEvent::new(at, kind)
}

fn approver(role: Role) -> Option<Approver> {
    Some(Approver {
        role,
        id: "u-1".into(),
    })
}

#[test]
fn cn_nfra_15_days_across_holidays_and_makeup_days() {
    let (r, c) = nfra();
    // (received local date at 10:00, expected last day, why)
    let table = [
        ("2025-09-15", "2025-09-30", "day 15 is an ordinary Tuesday"),
        (
            "2025-09-20",
            "2025-10-09",
            "day 15 = Oct 5, inside 国庆/中秋 Oct 1–8 → day after the holiday",
        ),
        (
            "2025-09-23",
            "2025-10-09",
            "day 15 = Oct 8, last holiday day → Oct 9",
        ),
        (
            "2025-09-24",
            "2025-10-09",
            "day 15 = Oct 9, first working day",
        ),
        (
            "2025-09-26",
            "2025-10-11",
            "day 15 = Oct 11 (Sat), a 调休 make-up working day: not moved",
        ),
        (
            "2025-09-13",
            "2025-09-28",
            "day 15 = Sep 28 (Sun), a make-up working day: not moved",
        ),
        (
            "2025-01-15",
            "2025-02-05",
            "day 15 = Jan 30, inside 春节 Jan 28–Feb 4 → Feb 5",
        ),
        (
            "2025-01-11",
            "2025-01-26",
            "day 15 = Jan 26 (Sun), make-up working day",
        ),
        (
            "2025-01-24",
            "2025-02-08",
            "day 15 = Feb 8 (Sat), make-up working day",
        ),
        (
            "2025-04-20",
            "2025-05-06",
            "day 15 = May 5, last day of 劳动节 May 1–5 → May 6",
        ),
        (
            "2026-02-01",
            "2026-02-24",
            "day 15 = Feb 16, inside 2026 春节 Feb 15–23 → Feb 24",
        ),
        (
            "2026-01-30",
            "2026-02-14",
            "day 15 = Feb 14 (Sat), 2026 make-up working day",
        ),
        (
            "2026-02-13",
            "2026-02-28",
            "day 15 = Feb 28 (Sat), 2026 make-up working day",
        ),
        (
            "2026-09-16",
            "2026-10-08",
            "day 15 = Oct 1, inside 2026 国庆 Oct 1–7 → Oct 8",
        ),
        (
            "2025-03-07",
            "2025-03-22",
            "day 15 = Sat Mar 22, ordinary weekend: not a statutory holiday (narrow reading)",
        ),
    ];
    for (received, expected, why) in table {
        let out = derive(&r, &c, bj(received, 10, 0), &[]);
        let due = out.decision_due.unwrap();
        assert_eq!(
            due.date,
            d(expected),
            "{received}: {why}\n{:#?}",
            out.explanation
        );
        assert_eq!(
            due.ends_at,
            bj(expected, 0, 0) + Duration::days(1),
            "24:00 Beijing time"
        );
        assert!(!out.flags.calendar_missing, "{received}");
        assert_eq!(out.limit.days, 15);
    }
}

#[test]
fn wide_reading_rolls_over_ordinary_weekends_but_not_makeup_days() {
    let text = include_str!("../data/regimes/cn-nfra.toml").replace(
        "last_day_rule = \"statutory_holiday\"",
        "last_day_rule = \"rest_day\"",
    );
    let r = Regime::from_toml_str("cn-nfra-wide.toml", &text).unwrap();
    let c = r.default_calendar().unwrap();
    let table = [
        ("2025-03-07", "2025-03-24", "Sat Mar 22 → Monday"),
        (
            "2025-09-26",
            "2025-10-11",
            "make-up Saturday is a working day",
        ),
        ("2025-09-20", "2025-10-09", "holiday → first working day"),
    ];
    for (received, expected, why) in table {
        let out = derive(&r, &c, bj(received, 10, 0), &[]);
        assert_eq!(out.decision_due.unwrap().date, d(expected), "{why}");
    }
}

#[test]
fn receipt_at_2359_and_0001_local_fall_on_different_days() {
    let (r, c) = nfra();
    // Both instants are on 2025-09-14 in UTC; their Beijing dates differ.
    let late = bj("2025-09-14", 23, 59);
    let early = bj("2025-09-15", 0, 1);
    assert_eq!(late.date_naive(), early.date_naive());
    let table = [(late, "2025-09-29"), (early, "2025-09-30")];
    for (at, expected) in table {
        let out = derive(&r, &c, at, &[]);
        assert_eq!(out.clock_started_on + Duration::days(15), d(expected));
        assert_eq!(out.decision_due.unwrap().date, d(expected), "{at}");
    }
}

#[test]
fn working_days_art33_referral_forwarding() {
    let (r, c) = nfra();
    let limit = r.referral_forward.clone().unwrap();
    assert_eq!(limit.days, 7);
    // (referral received, 7th working day after)
    let table = [
        (
            "2025-09-30",
            "2025-10-16",
            "Oct 1–8 off; Oct 11 (Sat) is a make-up working day",
        ),
        (
            "2025-09-26",
            "2025-10-13",
            "Sep 28 (Sun) make-up counts; Oct 1–8 skipped; Oct 11 counts",
        ),
        (
            "2025-01-24",
            "2025-02-10",
            "Jan 26 (Sun) make-up, Jan 28–Feb 4 off, Feb 8 (Sat) make-up",
        ),
        (
            "2026-02-13",
            "2026-03-02",
            "Feb 14 (Sat) make-up, Feb 15–23 off, Feb 28 (Sat) make-up",
        ),
        ("2025-03-03", "2025-03-12", "ordinary week"),
    ];
    for (received, expected, why) in table {
        let out = r.due_after(&c, bj(received, 9, 0), &limit).unwrap();
        assert_eq!(out.due.date, d(expected), "{why}\n{:#?}", out.explanation);
        assert!(out.calendar_missing.is_empty());
    }
}

#[test]
fn calendar_primitives() {
    let (_, c) = nfra();
    assert_eq!(c.coverage(), vec![2025, 2026]);
    let table = [
        // (date, working?, statutory holiday?, make-up?)
        ("2025-10-01", false, true, false),
        ("2025-10-04", false, true, false),
        ("2025-10-11", true, false, true),
        ("2025-09-28", true, false, true),
        ("2025-10-12", false, false, false),
        ("2025-10-09", true, false, false),
        ("2026-02-23", false, true, false),
        ("2026-01-04", true, false, true),
    ];
    for (date, working, holiday, makeup) in table {
        assert_eq!(c.is_working_day(d(date)), working, "{date}");
        assert_eq!(c.is_statutory_holiday(d(date)), holiday, "{date}");
        assert_eq!(c.is_makeup_working_day(d(date)), makeup, "{date}");
    }
    assert_eq!(c.day_after_holiday(d("2025-10-03")), Some(d("2025-10-09")));
    assert_eq!(c.day_after_holiday(d("2025-10-09")), None);
    let (date, missing) = c.add_working_days(d("2025-09-30"), 1).unwrap();
    assert_eq!(date, d("2025-10-09"));
    assert!(missing.is_empty());
    let (_, missing) = c.add_working_days(d("2026-12-30"), 5).unwrap();
    assert_eq!(missing.into_iter().collect::<Vec<_>>(), vec![2027]);
    let y = c.year(2025).unwrap();
    assert_eq!(
        y.source.document_number.as_deref(),
        Some("国办发明电〔2024〕12号")
    );
    assert_eq!(y.source.issued, Some(d("2024-11-12")));
    let y = c.year(2026).unwrap();
    assert_eq!(
        y.source.document_number.as_deref(),
        Some("国办发明电〔2025〕7号")
    );
    assert_eq!(y.source.issued, Some(d("2025-11-04")));
}

#[test]
fn pauses_and_resumptions() {
    let (r, c) = nfra();
    let received = bj("2025-03-03", 10, 0); // base deadline 2025-03-18
    struct Case {
        name: &'static str,
        events: Vec<ClockEvent>,
        due: Option<&'static str>,
        paused: u32,
        anomalies: usize,
    }
    let table = vec![
        Case {
            name: "appraisal Mar 5 → Mar 10 adds 5 days",
            events: vec![
                ev(
                    bj("2025-03-05", 9, 0),
                    K::Paused {
                        reason: PauseReason::ExternalAppraisal,
                    },
                ),
                ev(bj("2025-03-10", 9, 0), K::Resumed),
            ],
            due: Some("2025-03-23"),
            paused: 5,
            anomalies: 0,
        },
        Case {
            name: "two mediation pauses add up",
            events: vec![
                ev(
                    bj("2025-03-04", 9, 0),
                    K::Paused {
                        reason: PauseReason::Mediation,
                    },
                ),
                ev(bj("2025-03-06", 9, 0), K::Resumed),
                ev(
                    bj("2025-03-08", 9, 0),
                    K::Paused {
                        reason: PauseReason::Mediation,
                    },
                ),
                ev(bj("2025-03-11", 9, 0), K::Resumed),
            ],
            due: Some("2025-03-23"),
            paused: 5,
            anomalies: 0,
        },
        Case {
            name: "pause and resume on the same day: nothing excluded",
            events: vec![
                ev(
                    bj("2025-03-05", 9, 0),
                    K::Paused {
                        reason: PauseReason::ExternalAppraisal,
                    },
                ),
                ev(bj("2025-03-05", 17, 0), K::Resumed),
            ],
            due: Some("2025-03-18"),
            paused: 0,
            anomalies: 0,
        },
        Case {
            name: "awaiting the consumer does not stop the cn-nfra clock",
            events: vec![
                ev(
                    bj("2025-03-05", 9, 0),
                    K::Paused {
                        reason: PauseReason::AwaitingConsumer,
                    },
                ),
                ev(bj("2025-03-10", 9, 0), K::Resumed),
            ],
            due: Some("2025-03-18"),
            paused: 0,
            anomalies: 1,
        },
        Case {
            name: "open pause: no deadline until resumed",
            events: vec![ev(
                bj("2025-03-05", 9, 0),
                K::Paused {
                    reason: PauseReason::ExternalAppraisal,
                },
            )],
            due: None,
            paused: 0,
            anomalies: 0,
        },
        Case {
            name: "pause pushing the deadline into 清明 Apr 4–6 rolls to Apr 7",
            events: vec![
                ev(
                    bj("2025-03-05", 9, 0),
                    K::Paused {
                        reason: PauseReason::ExternalAppraisal,
                    },
                ),
                ev(bj("2025-03-22", 9, 0), K::Resumed),
            ],
            due: Some("2025-04-07"), // Mar 18 + 17 = Apr 4 → 清明节 Apr 4–6 → Apr 7
            paused: 17,
            anomalies: 0,
        },
    ];
    for case in table {
        let out = derive(&r, &c, received, &case.events);
        assert_eq!(
            out.decision_due.map(|x| x.date),
            case.due.map(d),
            "{}\n{:#?}",
            case.name,
            out.explanation
        );
        assert_eq!(out.paused_days, case.paused, "{}", case.name);
        assert_eq!(
            out.anomalies.len(),
            case.anomalies,
            "{}: {:?}",
            case.name,
            out.anomalies
        );
        if case.due.is_none() {
            assert!(matches!(
                out.status,
                CaseStatus::Paused {
                    reason: PauseReason::ExternalAppraisal,
                    ..
                }
            ));
            assert!(out.warnings_at.is_empty());
        }
    }
}

#[test]
fn new_facts_restart_the_clock() {
    let (r, c) = nfra();
    let received = bj("2025-03-03", 10, 0);
    let table: Vec<(&str, Vec<ClockEvent>, &str, u8)> = vec![
        (
            "restart on Mar 10",
            vec![ev(bj("2025-03-10", 11, 0), K::NewFacts)],
            "2025-03-25",
            0,
        ),
        (
            "restart clears an earlier pause",
            vec![
                ev(
                    bj("2025-03-04", 9, 0),
                    K::Paused {
                        reason: PauseReason::Mediation,
                    },
                ),
                ev(bj("2025-03-08", 9, 0), K::Resumed),
                ev(bj("2025-03-10", 11, 0), K::NewFacts),
            ],
            "2025-03-25",
            0,
        ),
        (
            "restart resets the extension tier to the base limit",
            vec![
                ev(
                    bj("2025-03-05", 9, 0),
                    K::Extended {
                        tier: 1,
                        approved_by: None,
                    },
                ),
                ev(bj("2025-03-10", 11, 0), K::NewFacts),
            ],
            "2025-03-25",
            0,
        ),
        (
            "restart into Golden Week",
            vec![ev(bj("2025-09-20", 11, 0), K::NewFacts)],
            "2025-10-09",
            0,
        ),
    ];
    for (name, events, due, tier) in table {
        let out = derive(&r, &c, received, &events);
        assert_eq!(
            out.decision_due.unwrap().date,
            d(due),
            "{name}\n{:#?}",
            out.explanation
        );
        assert_eq!(out.limit.tier, tier, "{name}");
        assert_eq!(out.paused_days, 0, "{name}");
    }
}

#[test]
fn extensions_in_history() {
    let (r, c) = nfra();
    let received = bj("2025-03-03", 10, 0); // 15 → Mar 18; 30 → Apr 2; 60 → May 2 (劳动节) → May 6
    let t1 = ev(
        bj("2025-03-10", 9, 0),
        K::Extended {
            tier: 1,
            approved_by: None,
        },
    );
    let table: Vec<(&str, Vec<ClockEvent>, &str, u32, u8, Option<RefusalReason>)> = vec![
        (
            "first extension to 30 days",
            vec![t1.clone()],
            "2025-04-02",
            30,
            1,
            None,
        ),
        (
            "second extension with compliance approval: 60 days, lands in 劳动节",
            vec![
                t1.clone(),
                ev(
                    bj("2025-03-30", 9, 0),
                    K::Extended {
                        tier: 2,
                        approved_by: approver(Role::Compliance),
                    },
                ),
            ],
            "2025-05-06",
            60,
            2,
            None,
        ),
        (
            "second extension approved by senior management",
            vec![
                t1.clone(),
                ev(
                    bj("2025-03-30", 9, 0),
                    K::Extended {
                        tier: 2,
                        approved_by: approver(Role::SeniorManagement),
                    },
                ),
            ],
            "2025-05-06",
            60,
            2,
            None,
        ),
        (
            "second extension without approval is refused",
            vec![
                t1.clone(),
                ev(
                    bj("2025-03-30", 9, 0),
                    K::Extended {
                        tier: 2,
                        approved_by: None,
                    },
                ),
            ],
            "2025-04-02",
            30,
            1,
            Some(RefusalReason::ApprovalRequired {
                tier: 2,
                roles: "superior_institution, senior_management, compliance".into(),
            }),
        ),
        (
            "second extension approved by a handler is refused",
            vec![
                t1.clone(),
                ev(
                    bj("2025-03-30", 9, 0),
                    K::Extended {
                        tier: 2,
                        approved_by: approver(Role::Handler),
                    },
                ),
            ],
            "2025-04-02",
            30,
            1,
            Some(RefusalReason::ApproverNotAuthorised {
                tier: 2,
                role: "handler",
                roles: "superior_institution, senior_management, compliance".into(),
            }),
        ),
        (
            "tier 2 before tier 1 is refused",
            vec![ev(
                bj("2025-03-10", 9, 0),
                K::Extended {
                    tier: 2,
                    approved_by: approver(Role::Compliance),
                },
            )],
            "2025-03-18",
            15,
            0,
            Some(RefusalReason::OutOfOrder {
                current: 0,
                requested: 2,
            }),
        ),
        (
            "no third extension",
            vec![
                t1.clone(),
                ev(
                    bj("2025-03-30", 9, 0),
                    K::Extended {
                        tier: 2,
                        approved_by: approver(Role::Compliance),
                    },
                ),
                ev(
                    bj("2025-04-20", 9, 0),
                    K::Extended {
                        tier: 3,
                        approved_by: approver(Role::Compliance),
                    },
                ),
            ],
            "2025-05-06",
            60,
            2,
            Some(RefusalReason::BeyondMaximum {
                max_tier: 2,
                max_total: 60,
            }),
        ),
        (
            "no extension after the decision",
            vec![
                ev(bj("2025-03-10", 9, 0), K::Decided),
                ev(
                    bj("2025-03-11", 9, 0),
                    K::Extended {
                        tier: 1,
                        approved_by: None,
                    },
                ),
            ],
            "2025-03-18",
            15,
            0,
            Some(RefusalReason::AlreadyDecided),
        ),
    ];
    for (name, events, due, days, tier, refusal) in table {
        let out = derive(&r, &c, received, &events);
        assert_eq!(
            out.decision_due.unwrap().date,
            d(due),
            "{name}\n{:#?}",
            out.explanation
        );
        assert_eq!((out.limit.days, out.limit.tier), (days, tier), "{name}");
        match refusal {
            None => assert!(out.anomalies.is_empty(), "{name}: {:?}", out.anomalies),
            Some(reason) => {
                let found = out.anomalies.iter().any(
                    |a| matches!(&a.kind, AnomalyKind::ExtensionRefused(e) if e.reason == reason),
                );
                assert!(found, "{name}: {:?}", out.anomalies);
            }
        }
    }
    // An extension recorded after the deadline had passed is not applied.
    let late = derive(
        &r,
        &c,
        received,
        &[ev(
            bj("2025-03-19", 9, 0),
            K::Extended {
                tier: 1,
                approved_by: None,
            },
        )],
    );
    assert_eq!(late.decision_due.unwrap().date, d("2025-03-18"));
    assert!(matches!(
        late.anomalies[0].kind,
        AnomalyKind::ExtensionAfterDeadline { .. }
    ));
}

#[test]
fn can_extend_is_a_pure_function() {
    let r = Regime::by_name("cn-nfra").unwrap();
    let t = r.main_track().unwrap();
    let none = ExtensionContext {
        current_tier: 0,
        decided: false,
    };
    let one = ExtensionContext {
        current_tier: 1,
        decided: false,
    };
    let two = ExtensionContext {
        current_tier: 2,
        decided: false,
    };
    let decided = ExtensionContext {
        current_tier: 0,
        decided: true,
    };
    let compliance = approver(Role::Compliance);
    let superior = approver(Role::SuperiorInstitution);
    let lead = approver(Role::TeamLead);
    let table: Vec<(ExtensionContext, u8, Option<Approver>, bool)> = vec![
        (none, 1, None, true),
        (one, 2, compliance.clone(), true),
        (one, 2, superior, true),
        (one, 2, None, false),
        (one, 2, lead, false),
        (none, 2, compliance.clone(), false),
        (two, 3, compliance.clone(), false),
        (two, 2, compliance.clone(), false),
        (decided, 1, None, false),
        (none, 0, None, false),
    ];
    for (ctx, tier, approval, ok) in table {
        assert_eq!(
            t.can_extend(ctx, tier, approval.as_ref()).is_ok(),
            ok,
            "{ctx:?} tier {tier} {approval:?}"
        );
    }
    let err = t.can_extend(one, 2, None).unwrap_err();
    assert!(err.to_string().contains("requires approval"), "{err}");
}

#[test]
fn review_window_and_review_due() {
    let (r, c) = nfra();
    let received = bj("2025-03-03", 10, 0);
    let decided = ev(bj("2025-03-15", 9, 0), K::Decided);
    let told = ev(bj("2025-03-16", 9, 0), K::ConsumerNotified);
    let table: Vec<(
        &str,
        Vec<ClockEvent>,
        Option<&str>,
        Option<&str>,
        Option<bool>,
        usize,
    )> = vec![
        (
            "decided, not yet told: window provisional from decision",
            vec![decided.clone()],
            Some("2025-04-14"),
            None,
            None,
            0,
        ),
        (
            "told Mar 16: window ends Apr 15",
            vec![decided.clone(), told.clone()],
            Some("2025-04-15"),
            None,
            Some(true),
            0,
        ),
        (
            "review requested Apr 1: due May 1 → 劳动节 → May 6",
            vec![
                decided.clone(),
                told.clone(),
                ev(bj("2025-04-01", 9, 0), K::ReviewRequested),
            ],
            Some("2025-04-15"),
            Some("2025-05-06"),
            Some(true),
            0,
        ),
        (
            "late review request is flagged",
            vec![
                decided.clone(),
                told.clone(),
                ev(bj("2025-04-20", 9, 0), K::ReviewRequested),
            ],
            Some("2025-04-15"),
            Some("2025-05-20"),
            Some(true),
            1,
        ),
        (
            "decided and told after the deadline",
            vec![
                ev(bj("2025-03-18", 20, 0), K::Decided),
                ev(bj("2025-03-19", 9, 0), K::ConsumerNotified),
            ],
            Some("2025-04-18"),
            None,
            Some(false),
            0,
        ),
    ];
    for (name, events, window, due, on_time, anomalies) in table {
        let out = derive(&r, &c, received, &events);
        assert_eq!(
            out.review_window_ends.map(|x| x.date),
            window.map(d),
            "{name}\n{:#?}",
            out.explanation
        );
        assert_eq!(out.review_due.map(|x| x.date), due.map(d), "{name}");
        assert_eq!(out.decision_on_time, on_time, "{name}");
        assert_eq!(
            out.anomalies.len(),
            anomalies,
            "{name}: {:?}",
            out.anomalies
        );
    }
}

#[test]
fn deadline_in_a_year_without_calendar_is_flagged_not_guessed() {
    let (r, c) = nfra();
    // Received 2026-12-20: day 15 = 2027-01-04. No 2027 notice is shipped.
    let out = derive(&r, &c, bj("2026-12-20", 10, 0), &[]);
    assert_eq!(out.decision_due.unwrap().date, d("2027-01-04"));
    assert!(out.flags.calendar_missing);
    assert_eq!(
        out.flags.missing_years.iter().copied().collect::<Vec<_>>(),
        vec![2027]
    );
    assert!(
        out.explanation
            .iter()
            .any(|l| l.contains("no data for 2027"))
    );
    // A 2026 deadline is not flagged.
    let out = derive(&r, &c, bj("2026-12-01", 10, 0), &[]);
    assert!(!out.flags.calendar_missing);
    // Working days walking into 2027 are flagged too.
    let limit = r.referral_forward.clone().unwrap();
    let out = r.due_after(&c, bj("2026-12-29", 10, 0), &limit).unwrap();
    assert!(out.calendar_missing.contains(&2027));
}

#[test]
fn calendar_correction_recomputes_without_stored_state() {
    let r = Regime::by_name("cn-nfra").unwrap();
    let original = include_str!("../data/calendars/cn/2025.toml");
    // A (hypothetical) corrected notice moving the end of the October holiday.
    let corrected = original.replace("end = \"2025-10-08\"", "end = \"2025-10-05\"");
    let a = Calendar::from_sources("cn", &[("cn/2025.toml", original)]).unwrap();
    let b = Calendar::from_sources("cn", &[("cn/2025-corrected.toml", &corrected)]).unwrap();
    let received = bj("2025-09-20", 10, 0);
    let events = [ev(bj("2025-09-22", 9, 0), K::ConsumerNotified)];
    let da = CaseClock::new(&r, &a)
        .unwrap()
        .derive(received, &events)
        .unwrap();
    let db = CaseClock::new(&r, &b)
        .unwrap()
        .derive(received, &events)
        .unwrap();
    assert_eq!(da.decision_due.unwrap().date, d("2025-10-09"));
    assert_eq!(db.decision_due.unwrap().date, d("2025-10-06"));
    // Same inputs, same outputs: nothing is remembered between derivations.
    let again = CaseClock::new(&r, &a)
        .unwrap()
        .derive(received, &events)
        .unwrap();
    assert_eq!(da, again);
}

#[test]
fn warnings_at_fractions_of_the_limit() {
    let (r, c) = nfra();
    let out = derive(&r, &c, bj("2025-03-03", 10, 0), &[]);
    let at: Vec<_> = out.warnings_at.iter().map(|w| (w.fraction, w.at)).collect();
    // 0.5 × 15 = 7.5 days → noon (Beijing) on day 8 = Mar 11; 0.8 × 15 = 12 → end of day 12 = Mar 15.
    assert_eq!(
        at,
        vec![
            (0.5, bj("2025-03-11", 12, 0)),
            (0.8, bj("2025-03-16", 0, 0))
        ]
    );
    assert_eq!(out.warnings_fired(bj("2025-03-12", 0, 0)), vec![0.5]);
    assert!(!out.is_overdue(bj("2025-03-18", 23, 59)));
    assert!(out.is_overdue(bj("2025-03-19", 0, 0)));
    // A pause shifts the warnings too.
    let paused = derive(
        &r,
        &c,
        bj("2025-03-03", 10, 0),
        &[
            ev(
                bj("2025-03-04", 9, 0),
                K::Paused {
                    reason: PauseReason::ExternalAppraisal,
                },
            ),
            ev(bj("2025-03-06", 9, 0), K::Resumed),
        ],
    );
    assert_eq!(paused.warnings_at[0].at, bj("2025-03-13", 12, 0));
    // Withdrawn: no warnings, status withdrawn.
    let w = derive(
        &r,
        &c,
        bj("2025-03-03", 10, 0),
        &[ev(bj("2025-03-05", 9, 0), K::Withdrawn)],
    );
    assert!(matches!(w.status, CaseStatus::Withdrawn { .. }));
    assert!(w.warnings_at.is_empty());
    // Reopened after decision: new period from the reopening day.
    let re = derive(
        &r,
        &c,
        bj("2025-03-03", 10, 0),
        &[
            ev(bj("2025-03-05", 9, 0), K::Decided),
            ev(bj("2025-04-01", 9, 0), K::Reopened),
        ],
    );
    assert_eq!(re.status, CaseStatus::Open);
    assert_eq!(re.decision_due.unwrap().date, d("2025-04-16"));
}

#[test]
fn uk_fca_and_us_cfpb() {
    let uk = Regime::by_name("uk-fca").unwrap();
    let ew = uk.default_calendar().unwrap();
    let received = ldn_winter("2025-12-22", 10);
    let std = CaseClock::new(&uk, &ew)
        .unwrap()
        .derive(received, &[])
        .unwrap();
    assert_eq!(
        std.decision_due.unwrap().date,
        d("2026-02-16"),
        "8 weeks = 56 days after receipt"
    );
    assert_eq!(
        std.summary_resolution_by.unwrap().date,
        d("2025-12-29"),
        "3rd business day: Dec 23, 24, 29"
    );
    let psd = CaseClock::for_track(&uk, &ew, "payment_services").unwrap();
    let out = psd.derive(received, &[]).unwrap();
    // 15 business days: Dec 23, 24, 29, 30, 31, Jan 2, 5–9, 12–15 (Dec 25/26, Jan 1 bank holidays).
    assert_eq!(out.decision_due.unwrap().date, d("2026-01-15"));
    assert_eq!(
        out.decision_due.unwrap().ends_at,
        ldn_winter("2026-01-16", 0)
    );
    let ext = psd
        .derive(
            received,
            &[ev(
                ldn_winter("2026-01-05", 9),
                K::Extended {
                    tier: 1,
                    approved_by: None,
                },
            )],
        )
        .unwrap();
    assert_eq!(ext.limit.days, 35);
    assert_eq!(ext.decision_due.unwrap().date, d("2026-02-12"));
    assert!(matches!(
        CaseClock::for_track(&uk, &ew, "nope"),
        Err(ClockError::UnknownTrack { .. })
    ));

    let us = Regime::by_name("us-cfpb").unwrap();
    let none = us.default_calendar().unwrap();
    let sent = Utc.with_ymd_and_hms(2025, 12, 20, 15, 0, 0).unwrap(); // 10:00 New York
    let out = CaseClock::new(&us, &none)
        .unwrap()
        .derive(sent, &[])
        .unwrap();
    assert_eq!(out.decision_due.unwrap().date, d("2026-01-04"));
    assert!(
        !out.flags.calendar_missing,
        "calendar days with no roll never ask the calendar"
    );
    let out = CaseClock::new(&us, &none)
        .unwrap()
        .derive(
            sent,
            &[ev(
                sent + Duration::days(3),
                K::Extended {
                    tier: 1,
                    approved_by: None,
                },
            )],
        )
        .unwrap();
    assert_eq!(out.decision_due.unwrap().date, d("2026-02-18"));
}

#[test]
fn events_must_be_ordered_and_after_receipt() {
    let (r, c) = nfra();
    let clock = CaseClock::new(&r, &c).unwrap();
    let received = bj("2025-03-03", 10, 0);
    let err = clock
        .derive(received, &[ev(bj("2025-03-02", 10, 0), K::Decided)])
        .unwrap_err();
    assert!(matches!(err, ClockError::BeforeReceipt { index: 0, .. }));
    let err = clock
        .derive(
            received,
            &[
                ev(bj("2025-03-05", 10, 0), K::NewFacts),
                ev(bj("2025-03-04", 10, 0), K::Decided),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, ClockError::OutOfOrder { index: 1, .. }));
}

/// Property-style: for every receipt day of 2025–2026 at several times of day and every cn-nfra
/// limit, the deadline is never earlier than receipt + limit calendar days, is never inside a
/// statutory holiday, moves at most past one holiday period, and never decreases when the
/// receipt moves later.
#[test]
fn property_deadline_never_earlier_than_limit() {
    let r = Regime::by_name("cn-nfra").unwrap();
    let c = r.default_calendar().unwrap();
    let clock = CaseClock::new(&r, &c).unwrap();
    let one = approver(Role::Compliance);
    let mut day = d("2025-01-01");
    let mut previous: [Option<NaiveDate>; 3] = [None; 3];
    while day <= d("2026-12-31") {
        for (h, m) in [(0, 0), (12, 30), (23, 59)] {
            let received =
                Utc.from_utc_datetime(&day.and_hms_opt(h, m, 0).unwrap()) - Duration::hours(8);
            let ext1 = ev(
                received + Duration::minutes(1),
                K::Extended {
                    tier: 1,
                    approved_by: None,
                },
            );
            let ext2 = ev(
                received + Duration::minutes(2),
                K::Extended {
                    tier: 2,
                    approved_by: one.clone(),
                },
            );
            let histories = [vec![], vec![ext1.clone()], vec![ext1, ext2]];
            for (i, (events, limit)) in histories.iter().zip([15_i64, 30, 60]).enumerate() {
                let out = clock.derive(received, events).unwrap();
                let due = out.decision_due.unwrap();
                assert!(due.date >= day + Duration::days(limit), "{day} {limit}");
                assert!(
                    due.ends_at > received + Duration::days(limit),
                    "{day} {limit}"
                );
                assert!(
                    !c.is_statutory_holiday(due.date) || out.flags.calendar_missing,
                    "{day} {limit}"
                );
                assert!(
                    (due.date - (day + Duration::days(limit))).num_days() <= 9,
                    "{day} {limit}"
                );
                if h == 0 {
                    if let Some(p) = previous[i] {
                        assert!(due.date >= p, "monotone at {day} {limit}");
                    }
                    previous[i] = Some(due.date);
                }
            }
        }
        day = day.succ_opt().unwrap();
    }
}

/// Property-style: a longer pause never gives an earlier deadline.
#[test]
fn property_longer_pause_never_earlier() {
    let (r, c) = nfra();
    let clock = CaseClock::new(&r, &c).unwrap();
    let received = bj("2025-09-01", 10, 0);
    let mut last = None;
    for len in 0..40 {
        let events = [
            ev(
                bj("2025-09-03", 10, 0),
                K::Paused {
                    reason: PauseReason::ExternalAppraisal,
                },
            ),
            ev(bj("2025-09-03", 10, 0) + Duration::days(len), K::Resumed),
        ];
        let due = clock
            .derive(received, &events)
            .unwrap()
            .decision_due
            .unwrap()
            .date;
        if let Some(prev) = last {
            assert!(due >= prev, "pause {len}");
        }
        last = Some(due);
    }
}

#[test]
fn loading_errors_name_file_line_and_field() {
    let good = include_str!("../data/calendars/cn/2025.toml");
    let table: Vec<(&str, String, &str, &str)> = vec![
        (
            "bad date",
            good.replace("end = \"2025-02-04\"", "end = \"2025-02-30\""),
            "holiday[1].end",
            "not a date",
        ),
        (
            "make-up day on a weekday",
            good.replace(
                "\"2025-01-26\", \"2025-02-08\"",
                "\"2025-01-27\", \"2025-02-08\"",
            ),
            "holiday[1].makeup_working_days[0]",
            "Saturday or Sunday",
        ),
        (
            "end before start",
            good.replace("end = \"2025-04-06\"", "end = \"2025-04-01\""),
            "holiday[2].end",
            "before start",
        ),
        (
            "overlap",
            good.replace("start = \"2025-04-04\"", "start = \"2025-02-04\"")
                .replace("end = \"2025-04-06\"", "end = \"2025-02-06\""),
            "holiday[2].start",
            "another holiday",
        ),
        (
            "wrong calendar",
            good.replace("calendar = \"cn\"", "calendar = \"uk-ew\""),
            "calendar",
            "expected `cn`",
        ),
        (
            "bad zone",
            good.replace("Asia/Shanghai", "Asia/Beijing"),
            "time_zone",
            "unknown IANA",
        ),
    ];
    for (name, text, field, msg) in table {
        let err = Calendar::from_sources("cn", &[("cn/2025.toml", &text)]).unwrap_err();
        match &err {
            LoadError::Invalid {
                file,
                line,
                field: f,
                message,
            } => {
                assert_eq!(file, "cn/2025.toml", "{name}");
                assert_eq!(f, field, "{name}");
                assert!(message.contains(msg), "{name}: {message}");
                assert!(*line > 1, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
        assert!(
            err.to_string().starts_with("cn/2025.toml:"),
            "{name}: {err}"
        );
    }
    // Shape errors carry the line too.
    let err = Calendar::from_sources(
        "cn",
        &[("x.toml", &good.replace("name = \"元旦\"", "nam = \"元旦\""))],
    )
    .unwrap_err();
    assert!(
        matches!(err, LoadError::Syntax { line, .. } if line > 1),
        "{err:?}"
    );
    // Two files for one year.
    let err = Calendar::from_sources("cn", &[("a.toml", good), ("b.toml", good)]).unwrap_err();
    assert!(err.to_string().starts_with("b.toml:"), "{err}");

    let regime = include_str!("../data/regimes/cn-nfra.toml");
    let table: Vec<(&str, String, &str)> = vec![
        ("second tier without roles", regime.replace("approver_roles = [\"superior_institution\", \"senior_management\", \"compliance\"]\n", ""), "tracks.standard.extension[1].approver_roles"),
        ("tier not above previous", regime.replace("total = 60", "total = 30"), "tracks.standard.extension[1].total"),
        ("bad unit", regime.replace("amount = 15, unit = \"calendar_days\"", "amount = 15, unit = \"fortnights\""), "tracks.standard.decision.unit"),
        ("bad fractions", regime.replace("fractions = [0.5, 0.8]", "fractions = [0.8, 0.5]"), "warnings.fractions"),
        ("bad rule", regime.replace("last_day_rule = \"statutory_holiday\"", "last_day_rule = \"sometimes\""), "counting.last_day_rule"),
        ("unknown default track", regime.replace("default_track = \"standard\"", "default_track = \"fast\""), "default_track"),
    ];
    for (name, text, field) in table {
        match Regime::from_toml_str("cn-nfra.toml", &text) {
            Err(LoadError::Invalid { field: f, line, .. }) => {
                assert_eq!(f, field, "{name}");
                assert!(line > 1, "{name}");
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        Regime::by_name("xx"),
        Err(LoadError::UnknownRegime(_))
    ));
    assert!(matches!(
        Calendar::by_name("xx"),
        Err(LoadError::UnknownCalendar(_))
    ));
}

#[test]
fn embedded_regimes_load_and_cite() {
    for name in redress_regime::REGIME_NAMES {
        let r = Regime::by_name(name).unwrap();
        assert_eq!(r.name, name);
        r.default_calendar().unwrap();
        for t in r.tracks.values() {
            assert!(!t.decision.article.is_empty());
            assert!(t.extensions.iter().all(|x| !x.article.is_empty()));
        }
    }
    let r = Regime::by_name("cn-nfra").unwrap();
    let t = r.main_track().unwrap();
    assert_eq!(
        (
            t.decision.days,
            t.extensions[0].total_days,
            t.extensions[1].total_days
        ),
        (15, 30, 60)
    );
    assert!(t.decision.article.contains("第十八条"));
    let review = r.review.as_ref().unwrap();
    assert_eq!((review.window.days, review.decision.days), (30, 30));
    assert!(r.is_major_complaint(20) && !r.is_major_complaint(19));
    let retention = r.retention.as_ref().unwrap();
    assert_eq!(retention.years, 3);
    assert!(!retention.confirmed);
    assert!(!r.satisfaction_follow_up.as_ref().unwrap().confirmed);
    assert!(r.pause_rule(PauseReason::ExternalAppraisal).is_some());
    assert!(r.pause_rule(PauseReason::AwaitingConsumer).is_none());
    assert_eq!(r.source.in_force, Some(d("2020-03-01")));
}

#[test]
fn loading_from_paths() {
    let root = env!("CARGO_MANIFEST_DIR");
    let r = Regime::from_path(format!("{root}/data/regimes/uk-fca.toml")).unwrap();
    assert_eq!(r.name, "uk-fca");
    let c = Calendar::from_dir("cn", format!("{root}/data/calendars/cn")).unwrap();
    assert_eq!(c.coverage(), vec![2025, 2026]);
    assert!(matches!(
        Regime::from_path(format!("{root}/missing.toml")),
        Err(LoadError::Io { .. })
    ));
}
