//! Channels and their subject tokens (`CHANNEL_REGULATOR_REFERRAL` ↔ `regulator_referral`).

use redress_proto::common::v1::Channel;

/// Every channel a complaint can come through.
pub const ALL: [Channel; 9] = [
    Channel::App,
    Channel::Web,
    Channel::Hotline,
    Channel::Email,
    Channel::Wechat,
    Channel::Letter,
    Channel::WalkIn,
    Channel::RegulatorReferral,
    Channel::Other,
];

/// The lower-case subject token of a channel.
pub fn token(channel: Channel) -> &'static str {
    match channel {
        Channel::Unspecified => "unspecified",
        Channel::App => "app",
        Channel::Web => "web",
        Channel::Hotline => "hotline",
        Channel::Email => "email",
        Channel::Wechat => "wechat",
        Channel::Letter => "letter",
        Channel::WalkIn => "walk_in",
        Channel::RegulatorReferral => "regulator_referral",
        Channel::Other => "other",
    }
}

/// The channel a subject token names, if any.
pub fn from_token(token: &str) -> Option<Channel> {
    ALL.into_iter().find(|c| self::token(*c) == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_the_lower_case_enum_suffix_and_round_trip() {
        for channel in ALL {
            let name = channel
                .as_str_name()
                .trim_start_matches("CHANNEL_")
                .to_lowercase();
            assert_eq!(token(channel), name);
            assert_eq!(from_token(&name), Some(channel));
        }
        assert_eq!(from_token("fax"), None);
    }
}
