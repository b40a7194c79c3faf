//! Extension rules as pure functions: who may extend, how far, and when it is too late.

// `Role` is a name used in regime files, so it is defined with the rules; re-exported here because
// approving an extension is where callers meet it.
pub use crate::regime::Role;
use crate::regime::Track;

/// Who approved an extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    /// Their role.
    pub role: Role,
    /// Their identifier (user id), kept for the audit trail.
    pub id: String,
}

/// Where the case stands when an extension is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExtensionContext {
    /// The tier already granted (0 = none).
    pub current_tier: u8,
    /// Whether a decision has already been made (or the case is otherwise closed).
    pub decided: bool,
}

/// Why an extension is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefusalReason {
    /// The decision has been made; there is nothing left to extend.
    #[error("a decision has already been made")]
    AlreadyDecided,
    /// The track allows no extension at all, or none beyond the tier already granted.
    #[error("no extension beyond the maximum of {max_total} days (tier {max_tier})")]
    BeyondMaximum {
        /// Highest tier of the track.
        max_tier: u8,
        /// Its total limit.
        max_total: u32,
    },
    /// Tiers go one at a time: tier 2 needs tier 1 first; a tier cannot be granted twice.
    #[error(
        "tier {requested} requested while tier {current} is in force; tiers are granted in order"
    )]
    OutOfOrder {
        /// Tier in force.
        current: u8,
        /// Tier requested.
        requested: u8,
    },
    /// This tier needs an approver and none was given.
    #[error("tier {tier} requires approval by one of: {roles}")]
    ApprovalRequired {
        /// Tier requested.
        tier: u8,
        /// Roles that may approve, comma-separated.
        roles: String,
    },
    /// The approver's role may not approve this tier.
    #[error("a {role} may not approve tier {tier}; allowed: {roles}")]
    ApproverNotAuthorised {
        /// Tier requested.
        tier: u8,
        /// Role of the approver given.
        role: &'static str,
        /// Roles that may approve, comma-separated.
        roles: String,
    },
}

/// An extension was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("extension refused: {reason}")]
pub struct ExtensionRefused {
    /// Why.
    pub reason: RefusalReason,
}

impl From<RefusalReason> for ExtensionRefused {
    fn from(reason: RefusalReason) -> Self {
        Self { reason }
    }
}

impl Track {
    /// Whether extension `tier` may be granted now, with `approval`.
    ///
    /// Refused: after a decision; beyond the last tier; out of order; without approval where the
    /// tier requires it; with an approver whose role is not listed for the tier.
    pub fn can_extend(
        &self,
        ctx: ExtensionContext,
        tier: u8,
        approval: Option<&Approver>,
    ) -> Result<(), ExtensionRefused> {
        if ctx.decided {
            return Err(RefusalReason::AlreadyDecided.into());
        }
        let last = self.extensions.last();
        let max_tier = last.map_or(0, |t| t.tier);
        let max_total = last.map_or(self.decision.days, |t| t.total_days);
        if tier > max_tier || ctx.current_tier >= max_tier || tier == 0 {
            return Err(RefusalReason::BeyondMaximum {
                max_tier,
                max_total,
            }
            .into());
        }
        if tier != ctx.current_tier + 1 {
            return Err(RefusalReason::OutOfOrder {
                current: ctx.current_tier,
                requested: tier,
            }
            .into());
        }
        let Some(rule) = self.extensions.iter().find(|t| t.tier == tier) else {
            return Err(RefusalReason::BeyondMaximum {
                max_tier,
                max_total,
            }
            .into());
        };
        if rule.requires_approval {
            let roles = rule
                .approver_roles
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let Some(approver) = approval else {
                return Err(RefusalReason::ApprovalRequired { tier, roles }.into());
            };
            if !rule.approver_roles.contains(&approver.role) {
                return Err(RefusalReason::ApproverNotAuthorised {
                    tier,
                    role: approver.role.as_str(),
                    roles,
                }
                .into());
            }
        }
        Ok(())
    }
}
