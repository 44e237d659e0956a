//! What a misspelt name was likely meant to be.

/// Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`: swapped letters
/// are the commonest typo, so they count as one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Whether `name` is close enough to `bound` to be a typo of it. Very short names are
/// never flagged: every one-letter name is one edit from every other.
pub fn looks_like_typo(name: &str, bound: &str) -> bool {
    let len = name.chars().count();
    let allowed = if len < 3 {
        0
    } else if len <= 4 {
        1
    } else {
        2
    };
    let d = edit_distance(name, bound);
    d > 0 && d <= allowed
}

/// The name among `names` that `key` is likely a typo of, if one is.
pub fn nearest<'a>(key: &str, names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    names
        .filter(|name| looks_like_typo(key, name))
        .min_by_key(|name| edit_distance(key, name))
}
