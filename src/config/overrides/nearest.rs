//! The known variable nearest to an unknown `DRAINERD_*` one, for the
//! warning that names it.

use super::{FIELDS, JOB_ENV_PREFIX, JOB_SECRET_ENV_PREFIX, NOT_FIELDS, PREFIX};

/// The known variable nearest to `name`: one that `name` abbreviates (its
/// letters in order, as `CMD` in `JOB_COMMAND`) if any, else the fewest
/// edits; ties go to the shorter name.
pub fn nearest(name: &str) -> &'static str {
    let letters = |s: &str| -> Vec<char> {
        s.trim_start_matches(PREFIX)
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect()
    };
    let want = letters(name);
    let known = FIELDS
        .iter()
        .map(|f| f.0)
        .chain(NOT_FIELDS[..2].iter().copied())
        .chain([JOB_ENV_PREFIX, JOB_SECRET_ENV_PREFIX]);
    let abbreviates = |k: &[char]| {
        let mut it = k.iter();
        !want.is_empty() && want.iter().all(|c| it.any(|x| x == c))
    };
    known
        .map(|k| {
            let kl = letters(k);
            (!abbreviates(&kl), edits(&want, &kl), k.len(), k)
        })
        .min()
        .map_or("DRAINERD_QUEUE_URL", |(_, _, _, k)| k)
}

/// Levenshtein distance.
fn edits(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}
