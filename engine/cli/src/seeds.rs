//! Seed lists (`0,3,5-9`), sharding and `{seed}` templates.

use anyhow::{anyhow, bail, Result};

/// Parses a seed list as the official tools accept it: comma-separated numbers and inclusive
/// ranges `a-b`. Seeds must fit NumPy's `0 .. 2^32-1`.
pub fn parse_seed_list(text: &str) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parse = |s: &str| -> Result<i64> {
            let v: i64 = s
                .trim()
                .parse()
                .map_err(|_| anyhow!("seed list {text:?}: {s:?} is not a number"))?;
            if !(0..=u32::MAX as i64).contains(&v) {
                bail!("seed list {text:?}: seed {v} is outside 0 .. 2^32-1");
            }
            Ok(v)
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if b < a {
                    bail!("seed list {text:?}: range {part:?} is backwards");
                }
                if b - a >= 10_000_000 {
                    bail!("seed list {text:?}: range {part:?} is too long");
                }
                out.extend(a..=b);
            }
            None => out.push(parse(part)?),
        }
    }
    if out.is_empty() {
        bail!("seed list {text:?} is empty");
    }
    Ok(out)
}

/// The `i`-th of `n` contiguous slices (`"i/n"`, 0-based), so array jobs split the work evenly.
pub fn shard(seeds: &[i64], spec: &str) -> Result<Vec<i64>> {
    let (i, n) = spec
        .split_once('/')
        .and_then(|(i, n)| {
            Some((
                i.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        })
        .ok_or_else(|| anyhow!("--shard {spec:?}: expected I/N, e.g. 0/4"))?;
    if n == 0 || i >= n {
        bail!("--shard {spec:?}: need 0 <= I < N");
    }
    let len = seeds.len();
    let (start, end) = (len * i / n, len * (i + 1) / n);
    Ok(seeds[start..end].to_vec())
}

/// Replaces `{seed}` with the seed and `{seed:0N}` with the seed zero-padded to N digits.
pub fn format_template(template: &str, seed: i64) -> String {
    let mut out = String::with_capacity(template.len() + 8);
    let mut rest = template;
    while let Some(pos) = rest.find("{seed") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 5..];
        if let Some(tail) = after.strip_prefix('}') {
            out.push_str(&seed.to_string());
            rest = tail;
        } else if let Some(spec_end) = after.strip_prefix(':').and_then(|a| a.find('}')) {
            let spec = &after[1..1 + spec_end];
            let width = spec.trim_start_matches('0').parse::<usize>().unwrap_or(0);
            if spec.starts_with('0') {
                out.push_str(&format!("{seed:0width$}"));
            } else {
                out.push_str(&format!("{seed:width$}"));
            }
            rest = &after[2 + spec_end..];
        } else {
            out.push_str("{seed");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists() {
        assert_eq!(
            parse_seed_list("0,3,5-9").ok(),
            Some(vec![0, 3, 5, 6, 7, 8, 9])
        );
        assert_eq!(parse_seed_list(" 7 ").ok(), Some(vec![7]));
        assert!(parse_seed_list("9-5").is_err());
        assert!(parse_seed_list("x").is_err());
        assert!(parse_seed_list("").is_err());
        assert!(parse_seed_list("4294967296").is_err());
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
            format_template("out/seed{seed:04}.png", 7),
            "out/seed0007.png"
        );
        assert_eq!(format_template("{seed}-{seed}", 12), "12-12");
        assert_eq!(format_template("{seedling}", 1), "{seedling}");
        assert_eq!(format_template("plain", 1), "plain");
    }
}
