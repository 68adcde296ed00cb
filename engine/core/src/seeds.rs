//! Seed lists (`0,3,5-9`), shards and `{seed}` templates: what `stylegraph run --seeds`, `generate`
//! and the HTTP server's sweeps mean by them.

/// Parses `0,3,5-9`: comma-separated seeds and inclusive ranges, each in `0 ..= 2^32-1` (the
/// seeds NumPy's `RandomState` accepts). Empty lists and lists longer than `max_count` are errors.
pub fn parse_seed_list(text: &str, max_count: usize) -> Result<Vec<i64>, String> {
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
        if seeds.len().saturating_add(count) > max_count {
            return Err(format!(
                "seeds {text:?}: more than {max_count} seeds in one run; split the sweep"
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

/// The `i`-th of `n` contiguous slices (`"i/n"`, 0-based), so array jobs split the work evenly.
pub fn shard(seeds: &[i64], spec: &str) -> Result<Vec<i64>, String> {
    let (i, n) = spec
        .split_once('/')
        .and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        })
        .ok_or_else(|| format!("shard {spec:?}: expected I/N, e.g. 0/4"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {spec:?}: need 0 <= I < N"));
    }
    let len = seeds.len();
    let (start, end) = (len * i / n, len * (i + 1) / n);
    Ok(seeds[start..end].to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges() {
        assert_eq!(
            parse_seed_list("0,3,5-9", 10_000),
            Ok(vec![0, 3, 5, 6, 7, 8, 9])
        );
        assert_eq!(parse_seed_list(" 7 ", 10_000), Ok(vec![7]));
        assert_eq!(parse_seed_list("4294967295", 10_000), Ok(vec![4294967295]));
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
            assert!(
                parse_seed_list(bad, 10_000).is_err(),
                "{bad:?} should be refused"
            );
        }
        assert_eq!(
            parse_seed_list("0-9999", 10_000).map(|s| s.len()),
            Ok(10_000)
        );
        assert!(parse_seed_list("0-9999,10000", 10_000).is_err());
    }

    #[test]
    fn shards_cover_everything_once() {
        let seeds: Vec<i64> = (0..10).collect();
        let mut all = Vec::new();
        for i in 0..3 {
            all.extend(shard(&seeds, &format!("{i}/3")).unwrap_or_default());
        }
        assert_eq!(all, seeds);
        assert!(shard(&seeds, "3/3").is_err());
        assert!(shard(&seeds, "a/b").is_err());
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
