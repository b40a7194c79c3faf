//! Learning from specialists over real Postgres, NATS and gRPC: a candidate trained from the
//! overrides is promoted over the rules when it is better and refused when it is worse, the
//! comparison is recorded, every replica switches engines without a restart (seen on the
//! classified event and through `Classify`), rollback restores the previous model, and the
//! scheduled retraining runs once per period across two replicas.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message as _;
use redress_classification::{
    Config,
    config::{ClassificationConfig, RetrainConfig},
};
use redress_proto::{
    classification::v1::{
        ClassifyRequest, ListModelsRequest, RetrainRequest, RollbackRequest,
        classification_service_client::ClassificationServiceClient,
    },
    common::v1::Channel,
    events::v1::{ComplaintReceived, ComplaintSummary, Event, event::Payload},
};
use redress_runtime::{
    Bus, bus,
    event::{new_event, service_actor},
    testing::{TestEnv, authed, eventually, grpc_channel, stored},
};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(60);

/// Three causes in words no rule or lexicon entry knows: only a model learnt from the
/// specialists' labels can tell them apart.
const CAUSES: [(&str, [&str; 3]); 3] = [
    (
        "C06",
        [
            "星辰计划的积分一直没有到账",
            "星辰计划积分少了一半",
            "参加星辰计划以后积分不见了",
        ],
    ),
    (
        "C02",
        [
            "月光套餐页面显示错乱",
            "月光套餐的页面打不开",
            "月光套餐页面一直转圈",
        ],
    ),
    (
        "C08",
        [
            "彩虹卡片的邮寄地址被改了",
            "彩虹卡片寄到了别的地址",
            "彩虹卡片地址栏被人修改",
        ],
    ),
];

struct Replica {
    running: redress_runtime::Running,
    shutdown: CancellationToken,
}

impl Replica {
    async fn start(env: &TestEnv, interval: Duration) -> Replica {
        let shutdown = CancellationToken::new();
        let config = Config {
            runtime: env.runtime_config(),
            classification: ClassificationConfig {
                retrain: RetrainConfig {
                    interval,
                    shadow_examples: 40,
                    ..ClassificationConfig::default().retrain
                },
                ..Default::default()
            },
            command: None,
        };
        match redress_classification::run(config, shutdown.clone()).await {
            Ok(running) => Replica { running, shutdown },
            Err(error) => panic!("classification did not start: {error}"),
        }
    }

    async fn client(&self) -> ClassificationServiceClient<tonic::transport::Channel> {
        let url = format!("http://{}", self.running.endpoints.grpc);
        ClassificationServiceClient::new(grpc_channel(&url).await)
    }

    async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.running.stopped().await;
    }
}

/// `n` specialists' overrides per cause, labelled `label_of(true cause)`, the newest at
/// `newest`: written straight into the tables the `Reclassify` RPC fills.
async fn overrides(
    pool: &PgPool,
    n: usize,
    newest: DateTime<Utc>,
    label_of: impl Fn(usize) -> usize,
) {
    let mut rows = Vec::new();
    for i in 0..n {
        for (c, (_, texts)) in CAUSES.iter().enumerate() {
            let text = format!("{}，订单{}，第{}次反映", texts[i % 3], 1000 + i, i % 5 + 1);
            let at = newest - chrono::Duration::seconds((n - i) as i64 * 3 + c as i64);
            rows.push((text, CAUSES[label_of(c)].0, at));
        }
    }
    for (text, cause, at) in rows {
        let id = uuid::Uuid::now_v7();
        let complaint = ComplaintSummary {
            complaint_id: id.to_string(),
            reference: format!("RD-T-{id}"),
            description: text.clone(),
            channel: Channel::App as i32,
            ..Default::default()
        };
        let inserted = sqlx::query(
            "INSERT INTO classifications (complaint_id, reference, text, language, current, \
               category_code, cause_code, severity, confidence, review_status, version, \
               classified_at, complaint) \
             VALUES ($1, $2, $3, 'zh', '\\x', 'B01', $4, 1, 1, 'reviewed', 2, $5, $6)",
        )
        .bind(id)
        .bind(&complaint.reference)
        .bind(&text)
        .bind(cause)
        .bind(at)
        .bind(complaint.encode_to_vec())
        .execute(pool)
        .await
        .and(
            sqlx::query(
                "INSERT INTO training_examples (complaint_id, text, language, category_code, \
                   cause_code, labelled_by, labelled_at) VALUES ($1, $2, 'zh', 'B01', $3, 'sp', $4)",
            )
            .bind(id)
            .bind(&text)
            .bind(cause)
            .bind(at)
            .execute(pool)
            .await,
        );
        if let Err(error) = inserted {
            panic!("override: {error}");
        }
    }
}

/// The model versions a replica's engine consults for a Chinese complaint of the first cause.
async fn versions(replica: &Replica) -> String {
    let mut client = replica.client().await;
    let result = client
        .classify(authed(
            ClassifyRequest {
                text: "星辰计划的积分一直没有到账，订单7,第2次反映".into(),
                ..Default::default()
            },
            &["specialist"],
        ))
        .await;
    match result {
        Ok(c) => c.into_inner().model_version,
        Err(status) => panic!("classify: {status}"),
    }
}

async fn publish_received(bus: &Bus, id: &str, text: &str) {
    let event = new_event(
        "intake",
        id,
        1,
        service_actor("intake"),
        ComplaintReceived {
            complaint: Some(ComplaintSummary {
                complaint_id: id.into(),
                reference: format!("RD-T-{id}"),
                channel: Channel::App as i32,
                description: text.into(),
                ..Default::default()
            }),
        },
    );
    if let Err(error) = bus.publish_event(&event).await {
        panic!("publish: {error}");
    }
}

/// The model version on the classified event of complaint `id`.
async fn classified_with(bus: &Bus, id: &str) -> String {
    eventually("the classified event", WAIT, || async {
        stored(bus, &bus::COMPLAINT_EVENTS)
            .await
            .into_iter()
            .filter_map(|m| Event::decode(m.payload.as_ref()).ok())
            .find_map(|e| match e.payload {
                Some(Payload::ComplaintClassified(c))
                    if c.complaint.as_ref().is_some_and(|s| s.complaint_id == id) =>
                {
                    c.classification.map(|c| c.model_version)
                }
                _ => None,
            })
    })
    .await
}

#[tokio::test]
async fn a_better_model_is_promoted_a_worse_refused_and_rollback_restores_the_previous() {
    let env = TestEnv::new().await;
    // Two replicas of one deployment; retraining only on command here.
    let a = Replica::start(&env, Duration::ZERO).await;
    let b = Replica::start(&env, Duration::ZERO).await;
    let pool = env.pool("classification").await;
    let bus = env.bus().await;
    let mut admin = a.client().await;
    assert!(
        !versions(&b).await.contains("zh-cause"),
        "no Chinese model yet"
    );

    // Too few overrides: nothing is trained, and it says why.
    overrides(&pool, 5, Utc::now(), |c| c).await;
    let early = admin
        .retrain(authed(RetrainRequest::default(), &["admin"]))
        .await
        .map(|r| r.into_inner());
    let Ok(early) = early else {
        panic!("{early:?}")
    };
    assert!(
        early.models.is_empty() && early.notes[0].contains("held out"),
        "{early:?}"
    );
    let denied = admin
        .retrain(authed(RetrainRequest::default(), &["specialist"]))
        .await;
    assert_eq!(
        denied.err().map(|s| s.code()),
        Some(tonic::Code::PermissionDenied)
    );
    let bad = admin
        .retrain(authed(
            RetrainRequest {
                slot: "fr-cause".into(),
            },
            &["admin"],
        ))
        .await;
    assert_eq!(
        bad.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );

    // 120 clean overrides: the candidate learns what the rules cannot and is promoted.
    overrides(&pool, 40, Utc::now(), |c| c).await;
    let better = admin
        .retrain(authed(RetrainRequest::default(), &["admin"]))
        .await
        .map(|r| r.into_inner());
    let Ok(better) = better else {
        panic!("{better:?}")
    };
    let v1 = better.models[0].clone();
    assert_eq!(
        (
            v1.decision.as_str(),
            v1.status.as_str(),
            v1.compared_with.as_str()
        ),
        ("promoted", "active", "rules"),
        "{v1:#?}"
    );
    assert_eq!(v1.shadow_examples, 40);
    let (cur, cand) = (
        v1.current.clone().unwrap_or_default(),
        v1.candidate.clone().unwrap_or_default(),
    );
    assert!(
        cand.auto_routed_correct > cur.auto_routed_correct,
        "{v1:#?}"
    );
    assert!(v1.trigger.starts_with("command:"));

    // Every replica uses it without a restart: the other one's dry run and a real complaint.
    eventually("replica b to switch", WAIT, || async {
        versions(&b).await.contains(&v1.version).then_some(())
    })
    .await;
    let id = uuid::Uuid::now_v7().to_string();
    publish_received(&bus, &id, "彩虹卡片寄到了别的地址，订单99").await;
    assert!(classified_with(&bus, &id).await.contains(&v1.version));

    // Specialists who labelled the older complaints the wrong way round: the candidate learns
    // that, is worse on the recent overrides, and is refused; v1 stays.
    let long_ago = Utc::now() - chrono::Duration::days(30);
    overrides(&pool, 70, long_ago, |c| (c + 1) % 3).await;
    let worse = admin
        .retrain(authed(
            RetrainRequest {
                slot: "zh-cause".into(),
            },
            &["admin"],
        ))
        .await
        .map(|r| r.into_inner());
    let Ok(worse) = worse else {
        panic!("{worse:?}")
    };
    let v2 = worse.models[0].clone();
    assert_eq!(
        (
            v2.decision.as_str(),
            v2.status.as_str(),
            v2.compared_with.as_str()
        ),
        ("kept_current", "rejected", v1.version.as_str()),
        "{v2:#?}"
    );
    assert!(v2.reason.contains("FAILED"), "{}", v2.reason);
    assert!(versions(&a).await.contains(&v1.version));

    // Both comparisons are recorded, newest first.
    let listed = admin
        .list_models(authed(
            ListModelsRequest {
                slot: "zh-cause".into(),
                page: None,
            },
            &["compliance"],
        ))
        .await
        .map(|r| r.into_inner().models);
    let Ok(listed) = listed else {
        panic!("{listed:?}")
    };
    let listed: Vec<_> = listed
        .iter()
        .map(|m| (m.version.clone(), m.status.clone()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (v2.version.clone(), "rejected".to_owned()),
            (v1.version.clone(), "active".to_owned())
        ]
    );

    // Rollback: the model v1 replaced (the configured one, rules for Chinese) on every replica.
    let rolled = admin
        .rollback(authed(
            RollbackRequest {
                slot: "zh-cause".into(),
                to_version: String::new(),
            },
            &["admin"],
        ))
        .await
        .map(|r| r.into_inner());
    let Ok(rolled) = rolled else {
        panic!("{rolled:?}")
    };
    assert_eq!(
        (
            rolled.active_version.as_str(),
            rolled.rolled_back_version.as_str()
        ),
        ("", v1.version.as_str())
    );
    eventually("replica b to roll back", WAIT, || async {
        (!versions(&b).await.contains("zh-cause")).then_some(())
    })
    .await;
    let id = uuid::Uuid::now_v7().to_string();
    publish_received(&bus, &id, "彩虹卡片寄到了别的地址，订单100").await;
    assert!(!classified_with(&bus, &id).await.contains("zh-cause"));

    // Back to v1 by name; a refused candidate cannot be made active.
    let rejected = admin
        .rollback(authed(
            RollbackRequest {
                slot: "zh-cause".into(),
                to_version: v2.version.clone(),
            },
            &["admin"],
        ))
        .await;
    assert_eq!(
        rejected.err().map(|s| s.code()),
        Some(tonic::Code::InvalidArgument)
    );
    let again = admin
        .rollback(authed(
            RollbackRequest {
                slot: "zh-cause".into(),
                to_version: v1.version.clone(),
            },
            &["admin"],
        ))
        .await
        .map(|r| r.into_inner().active_version);
    assert_eq!(again.ok(), Some(v1.version.clone()));
    eventually("replica b to use v1 again", WAIT, || async {
        versions(&b).await.contains(&v1.version).then_some(())
    })
    .await;

    // A restarted replica starts with the active model.
    a.stop().await;
    let c = Replica::start(&env, Duration::ZERO).await;
    assert!(versions(&c).await.contains(&v1.version));
    c.stop().await;
    b.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn scheduled_retraining_runs_once_per_period_across_replicas() {
    let env = TestEnv::new().await;
    let pool = env.pool("classification").await;
    // Migrations first (a replica that schedules nothing), then the overrides, then two
    // replicas retraining every 3 s.
    Replica::start(&env, Duration::ZERO).await.stop().await;
    overrides(&pool, 40, Utc::now(), |c| c).await;
    let first = Replica::start(&env, Duration::from_secs(3)).await;
    let second = Replica::start(&env, Duration::from_secs(3)).await;
    let version = eventually("a scheduled promotion", WAIT, || async {
        sqlx::query_scalar::<_, String>(
            "SELECT version FROM models WHERE status = 'active' AND trigger LIKE 'schedule:%'",
        )
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
    })
    .await;
    for replica in [&first, &second] {
        eventually("both replicas to switch", WAIT, || async {
            versions(replica).await.contains(&version).then_some(())
        })
        .await;
    }
    first.stop().await;
    second.stop().await;

    // One job per period although both replicas scheduled it, and one candidate per run.
    let doubled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT due_at FROM jobs WHERE queue = 'classification-retrain' \
         GROUP BY due_at HAVING count(*) > 1) d",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or(-1);
    assert_eq!(doubled, 0);
    let (done, runs, triggers): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM jobs WHERE queue = 'classification-retrain' AND state = 'done'), \
                (SELECT count(*) FROM models WHERE trigger LIKE 'schedule:%'), \
                (SELECT count(DISTINCT trigger) FROM models WHERE trigger LIKE 'schedule:%')",
    )
    .fetch_one(&pool)
    .await
    .unwrap_or((-1, -2, -3));
    assert!(done >= 1);
    assert_eq!(
        (runs, triggers),
        (done, done),
        "one candidate per scheduled run"
    );
    env.cleanup().await;
}
