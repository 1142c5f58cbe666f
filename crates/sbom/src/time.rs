//! The document's creation time, never the wall clock: `SOURCE_DATE_EPOCH`, else the image
//! config's `created`, else the epoch.

/// The time an SBOM states: `SOURCE_DATE_EPOCH` when given, else the config's `created`
/// (normalised to UTC whole seconds), else `1970-01-01T00:00:00Z`.
pub fn created_from_config(config: &[u8], source_date_epoch: Option<u64>) -> String {
    if let Some(epoch) = source_date_epoch {
        return whittle_image::config::rfc3339(epoch);
    }
    serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .and_then(|c| c["created"].as_str().and_then(rfc3339_normalize))
        .unwrap_or_else(|| whittle_image::config::rfc3339(0))
}

/// An RFC 3339 time (`2024-01-02T03:04:05.678+01:00`) as UTC whole seconds
/// (`2024-01-02T02:04:05Z`), the form SPDX requires; `None` if it is not one or is before 1970.
pub fn rfc3339_normalize(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    // Howard Hinnant's days-from-civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let epoch = days * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset;
    u64::try_from(epoch)
        .ok()
        .map(whittle_image::config::rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_config_times() {
        assert_eq!(
            rfc3339_normalize("2023-11-14T22:13:20Z").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            rfc3339_normalize("2023-11-14T22:13:20.123456789Z").as_deref(),
            Some("2023-11-14T22:13:20Z")
        );
        assert_eq!(
            rfc3339_normalize("2024-03-01T00:30:00+01:00").as_deref(),
            Some("2024-02-29T23:30:00Z")
        );
        assert_eq!(
            rfc3339_normalize("2000-02-29T00:00:00-00:30").as_deref(),
            Some("2000-02-29T00:30:00Z")
        );
        for bad in [
            "",
            "yesterday",
            "2023-13-01T00:00:00Z",
            "2023-11-14T22:13:20",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(rfc3339_normalize(bad), None, "{bad}");
        }
    }

    #[test]
    fn created_prefers_source_date_epoch() {
        let config = br#"{"created":"2023-11-14T22:13:20.5Z"}"#;
        assert_eq!(created_from_config(config, None), "2023-11-14T22:13:20Z");
        assert_eq!(created_from_config(config, Some(0)), "1970-01-01T00:00:00Z");
        assert_eq!(created_from_config(b"{}", None), "1970-01-01T00:00:00Z");
        assert_eq!(
            created_from_config(b"not json", None),
            "1970-01-01T00:00:00Z"
        );
    }
}
