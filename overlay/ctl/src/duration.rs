//! Durations as people read them (lease ages and TTLs).

/// Seconds as the two largest units: `45s`, `3m12s`, `2h5m`, `4d2h`.
pub fn human(secs: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    for (i, (size, name)) in UNITS.iter().enumerate() {
        if secs >= *size || *size == 1 {
            let head = format!("{}{name}", secs / size);
            return match UNITS.get(i + 1) {
                Some((next, next_name)) => {
                    format!("{head}{}{next_name}", secs % size / next)
                }
                None => head,
            };
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (60, "1m0s"),
            (192, "3m12s"),
            (3_600 * 2 + 300 + 7, "2h5m"),
            (86_400 * 4 + 3_600 * 2 + 59, "4d2h"),
        ] {
            assert_eq!(human(secs), text, "{secs}");
        }
    }
}
