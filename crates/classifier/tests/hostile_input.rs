#![allow(clippy::expect_used, clippy::unwrap_used)] // a test: a failed expectation is a failed test
//! No input makes the classifier panic or leave its ranges: generated complaints of every
//! script, size and shape, and model artifacts corrupted in ways a checksum cannot catch.
//!
//! The inputs come from a seeded generator, so a failure names a seed and case that
//! reproduce it.

use redress_classifier::{
    Amount, Classifier, ComplaintInput, DEFAULT_REVIEW_THRESHOLD, DEFAULT_TARGET_PRECISION,
    Example, Model, TrainOptions, VulnerableFlags,
};
use sha2::{Digest, Sha256};

/// xorshift64*: enough to spread cases; a fixed seed keeps every run the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

/// Pieces that exercise the tokenizer, the rule scanner and the feature hashing: scripts,
/// full-width forms, combining marks, joiners, emoji, redaction runs, amounts, numbers at
/// the edges of `i64`, control characters and words longer than any table.
const PIECES: &[&str] = &[
    "debt collector",
    "my credit report",
    " ",
    "\n\n",
    "\t",
    "\0",
    "\u{7f}",
    "XXXX",
    "XX/XX/XXXX",
    "{$1,200.00}",
    "$9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999999999",
    "盗刷",
    "催收",
    "信用卡被盗刷了，银行不处理，我要向12378投诉",
    "银保监会",
    "起诉",
    "老人",
    "群体",
    "泄露",
    "，",
    "。",
    "ＡＢＣ１２３",
    "\u{3000}",
    "e\u{301}\u{301}\u{301}",
    "\u{200d}\u{200b}\u{feff}",
    "👨\u{200d}👩\u{200d}👧",
    "🏦💸",
    "العربية",
    "עברית",
    "\u{202e}reversed",
    "Ωμέγα",
    "кредит",
    "한국어",
    "カタカナ",
    "𠀀𠀁",
    "\u{fffd}",
    "a",
    "'",
    "\"",
    "\\",
    "--",
    "...",
];

fn text(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(20) {
            // A word longer than any window or table.
            0 => out.push_str(
                &rng.pick(&["a", "长", "é", "9"])
                    .repeat(1 + rng.below(5_000)),
            ),
            // Any scalar value at all, surrogates excepted.
            1 => out.extend(
                (0..rng.below(8)).filter_map(|_| char::from_u32((rng.next() % 0x11_0000) as u32)),
            ),
            _ => out.push_str(rng.pick(PIECES)),
        }
    }
    out
}

fn input(rng: &mut Rng) -> ComplaintInput {
    let optional = |rng: &mut Rng| (rng.below(3) == 0).then(|| text(rng));
    ComplaintInput {
        text: text(rng),
        title: optional(rng),
        product: optional(rng),
        channel: rng
            .pick(&["web", "app", "regulator_referral", "", "ＷＥＢ", "\0"])
            .to_string(),
        language_hint: optional(rng),
        amount: (rng.below(2) == 0).then(|| Amount {
            minor: rng.pick(&[i64::MIN, -1, 0, 1, 5_000_000, i64::MAX]),
            currency: rng
                .pick(&["CNY", "USD", "", "cny", "XXX", "人民币"])
                .to_string(),
        }),
        vulnerable: VulnerableFlags {
            elderly: rng.below(2) == 0,
            disabled: rng.below(4) == 0,
            other: optional(rng).into_iter().collect(),
        },
        repeat_count: rng.pick(&[0, 1, 2, u32::MAX]),
    }
}

#[test]
fn no_generated_complaint_makes_classify_panic_or_leave_its_ranges()
-> redress_classifier::Result<()> {
    let classifier = Classifier::embedded()?;
    let mut rng = Rng(0x00C0_FFEE);
    for case in 0..2_000 {
        let input = input(&mut rng);
        let at = format!(
            "case {case}: {:?}",
            input.text.chars().take(80).collect::<String>()
        );
        // Under a target precision too: every label has a threshold, and review follows it.
        let p = classifier.classify_at_precision(&input, DEFAULT_TARGET_PRECISION);
        for label in [&p.category, &p.cause] {
            assert!(classifier.taxonomy().get(&label.code).is_some(), "{at}");
            assert!((0.0..=1.0).contains(&label.confidence), "{at}");
            assert!(label.threshold.is_finite() && label.threshold > 0.0, "{at}");
        }
        assert_eq!(
            p.needs_review,
            !(p.category.passes() && p.cause.passes()),
            "{at}"
        );
        let c = classifier.classify(&input, DEFAULT_REVIEW_THRESHOLD);
        for label in [&c.category, &c.cause] {
            assert!(
                classifier.taxonomy().get(&label.code).is_some(),
                "{at}: code {:?} is not in the taxonomy",
                label.code
            );
            assert!(
                (0.0..=1.0).contains(&label.confidence),
                "{at}: {}",
                label.confidence
            );
        }
        assert!(
            (0.0..=1.0).contains(&c.confidence),
            "{at}: {}",
            c.confidence
        );
        assert_eq!(
            c.needs_review,
            c.confidence < DEFAULT_REVIEW_THRESHOLD,
            "{at}"
        );
        assert!(c.severity.score.is_finite(), "{at}");
        let reasons = c.category.reasons.iter().chain(&c.cause.reasons);
        for evidence in reasons
            .chain(&c.severity.reasons)
            .filter_map(|r| r.evidence.as_ref())
        {
            assert!(evidence.start < evidence.end, "{at}: {evidence:?}");
            assert!(!evidence.text.is_empty(), "{at}: {evidence:?}");
        }
    }
    Ok(())
}

/// A small model trained here, so that corrupting it is cheap.
fn small_model() -> redress_classifier::Result<Model> {
    let topics = [
        (
            "debt",
            "a debt collector keeps calling about a debt i do not owe",
        ),
        (
            "card",
            "my credit card was charged twice and the bank will not refund",
        ),
        (
            "loan",
            "the mortgage servicer lost my payment and added a late fee",
        ),
    ];
    let examples: Vec<Example> = (0..60)
        .map(|i| {
            let (label, text) = topics[i % topics.len()];
            Example::new(format!("{text} case {i}"), label)
        })
        .collect();
    let options = TrainOptions {
        calibrate: false,
        ..TrainOptions::english()
    };
    Model::train(&examples, &options, |_| {})
}

/// The artifact with `body` as its payload and a checksum that matches it, so that decoding
/// and validation, not the checksum, must stand in the way.
fn resealed(artifact: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = artifact[..12].to_vec();
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

#[test]
fn a_corrupted_artifact_with_a_valid_checksum_is_refused_or_still_predicts_in_range()
-> redress_classifier::Result<()> {
    let artifact = small_model()?.to_bytes()?;
    let body = &artifact[44..];
    let mut rng = Rng(0xA27F_AC75);
    let (mut refused, mut loaded) = (0, 0);
    for case in 0..3_000 {
        let mut mutated = body.to_vec();
        match rng.below(4) {
            0 => mutated.truncate(rng.below(body.len())),
            1 => mutated.insert(rng.below(body.len()), rng.next() as u8),
            _ => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(mutated.len());
                    mutated[at] = rng.next() as u8;
                }
            }
        }
        let Ok(model) = Model::from_bytes(&resealed(&artifact, &mutated)) else {
            refused += 1;
            continue;
        };
        loaded += 1;
        for text in ["a debt collector keeps calling", "", "长长长 XXXX {$5.00}"] {
            let p = model.predict_explained(text, 5);
            assert!(
                (0.0..=1.0).contains(&p.confidence),
                "case {case}: confidence {} from a loaded corrupted artifact",
                p.confidence
            );
            assert!(
                model.labels().contains(&p.label),
                "case {case}: {}",
                p.label
            );
        }
    }
    // Both paths ran: the mutations are neither all fatal nor all harmless.
    assert!(
        refused > 0 && loaded > 0,
        "refused {refused}, loaded {loaded}"
    );
    Ok(())
}

#[test]
fn random_bytes_are_never_a_model() {
    let mut rng = Rng(0xB17E5);
    for len in [0, 1, 8, 43, 44, 45, 100, 4_096] {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        assert!(
            Model::from_bytes(&bytes).is_err(),
            "{len} random bytes loaded"
        );
        let mut with_magic = b"REDRESSM\x03\0\0\0".to_vec();
        with_magic.extend_from_slice(&bytes);
        let sealed = resealed(&with_magic, &bytes);
        assert!(
            Model::from_bytes(&sealed).is_err(),
            "{len} sealed random bytes loaded"
        );
    }
}
