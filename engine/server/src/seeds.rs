//! Seed lists and `{seed}` templates, with the meaning the CLI's `--seeds` gives them.

/// Most seeds one run may sweep (a run's status lists every item; bigger sweeps belong to the
/// CLI's `--seeds` with `--shard`, or to several runs).
pub const MAX_SEEDS_PER_RUN: usize = 10_000;

/// Parses `0,3,5-9`: comma-separated seeds and inclusive ranges, each in `0 ..= 2^32-1` (the
/// seeds NumPy's `RandomState` accepts). Empty lists and over-long sweeps are errors.
pub fn parse_seed_list(text: &str) -> Result<Vec<i64>, String> {
    let number = |s: &str| -> Result<i64, String> {
        let v: i64 = s
            .trim()
            .parse()
            .map_err(|_| format!("seeds {text:?}: {:?} is not a whole number", s.trim()))?;
        if !(0..=i64::from(u32::MAX)).contains(&v) {
            return Err(format!(
                "seeds {text:?}: seed {v} is outside 0 ..= 4294967295"
            ));
        }
        Ok(v)
    };
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None => {
                let v = number(part)?;
                (v, v)
            }
        };
        if last < first {
            return Err(format!("seeds {text:?}: range {part:?} runs backwards"));
        }
        // Count before materialising, so `0-4294967295` costs nothing.
        let count = usize::try_from(last - first + 1).unwrap_or(usize::MAX);
        if seeds.len().saturating_add(count) > MAX_SEEDS_PER_RUN {
            return Err(format!(
                "seeds {text:?}: more than {MAX_SEEDS_PER_RUN} seeds in one run; split the sweep \
                 into several runs"
            ));
        }
        seeds.extend(first..=last);
    }
    if seeds.is_empty() {
        return Err(format!("seeds {text:?}: the list is empty"));
    }
    Ok(seeds)
}

/// Replaces `{seed}` with the seed, `{seed:0N}` with it zero-padded to N digits and `{seed:N}`
/// with it space-padded to N characters; any other text, including a malformed `{seed...`, is
/// kept as it is.
pub fn format_template(template: &str, seed: i64) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(at) = rest.find("{seed") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "{seed".len()..];
        if let Some(tail) = after.strip_prefix('}') {
            out.push_str(&seed.to_string());
            rest = tail;
            continue;
        }
        let spec = after
            .strip_prefix(':')
            .and_then(|s| s.split_once('}'))
            .filter(|(spec, _)| !spec.is_empty() && spec.bytes().all(|b| b.is_ascii_digit()));
        match spec {
            Some((spec, tail)) => {
                // Widths beyond a few dozen characters are not file names anyone wants.
                let width = spec.parse::<usize>().unwrap_or(0).min(64);
                if spec.starts_with('0') {
                    out.push_str(&format!("{seed:0width$}"));
                } else {
                    out.push_str(&format!("{seed:width$}"));
                }
                rest = tail;
            }
            None => {
                out.push_str("{seed");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(parse_seed_list("0,3,5-9"), Ok(vec![0, 3, 5, 6, 7, 8, 9]));
        assert_eq!(parse_seed_list(" 7 "), Ok(vec![7]));
        assert_eq!(parse_seed_list("4294967295"), Ok(vec![4294967295]));
        for bad in [
            "",
            ",",
            "9-5",
            "x",
            "-1",
            "4294967296",
            "1-2-3",
            "0-4294967295",
        ] {
            assert!(parse_seed_list(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(parse_seed_list("0-9999").map(|s| s.len()), Ok(10_000));
        assert!(parse_seed_list("0-9999,10000").is_err());
    }

    #[test]
    fn templates() {
        assert_eq!(
            format_template("out/seed{seed:04}.npy", 7),
            "out/seed0007.npy"
        );
        assert_eq!(format_template("{seed}-{seed}", 12), "12-12");
        assert_eq!(format_template("[{seed:3}]", 5), "[  5]");
        assert_eq!(format_template("{seedling}", 1), "{seedling}");
        assert_eq!(format_template("{seed:x}", 1), "{seed:x}");
        assert_eq!(format_template("{seed:", 1), "{seed:");
        assert_eq!(format_template("plain", 1), "plain");
    }
}
