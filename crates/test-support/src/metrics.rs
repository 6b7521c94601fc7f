//! Reading one sample out of Prometheus / OpenMetrics text (`GET /metrics`).

/// The value of the sample `name` whose labels are exactly `labels` (in any order), or `None`
/// when `text` has no such sample.
///
/// `metric(text, "srs_proxy_sessions_total", &[("protocol", "rtmp"), ("direction", "play")])`
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (sample, value) = parse_line(line)?;
            (sample.0 == name && same_labels(&sample.1, labels)).then_some(value)
        })
}

fn same_labels(found: &[(String, String)], wanted: &[(&str, &str)]) -> bool {
    found.len() == wanted.len()
        && wanted
            .iter()
            .all(|(k, v)| found.iter().any(|(fk, fv)| fk == k && fv == v))
}

type Sample = (String, Vec<(String, String)>);

/// `name{k="v",...} value [timestamp]`.
fn parse_line(line: &str) -> Option<(Sample, f64)> {
    let line = line.trim();
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inside) = rest.strip_prefix('{') {
        let mut chars = inside.char_indices();
        let mut key = String::new();
        loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => {
                    rest = &inside[i + 1..];
                    break;
                }
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                other => key.push(other),
            }
        }
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(((name, labels), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP srs_proxy_sessions_total Sessions relayed since start.
# TYPE srs_proxy_sessions_total counter
srs_proxy_sessions_total{protocol=\"rtmp_play\"} 3
srs_proxy_sessions_total{protocol=\"rtmp\",direction=\"play\"} 7
srs_proxy_origin_streams{origin=\"a/s,\\\"1\\\"\",device_id=\"\"} 2
srs_proxy_origin_dial_failures_total 1
srs_proxy_uptime_seconds 12.5 1700000000
# EOF
";

    #[test]
    fn finds_a_sample_by_its_exact_labels() {
        let m = |name, labels: &[(&str, &str)]| metric(TEXT, name, labels);
        assert_eq!(
            m("srs_proxy_sessions_total", &[("protocol", "rtmp_play")]),
            Some(3.0)
        );
        assert_eq!(
            m(
                "srs_proxy_sessions_total",
                &[("direction", "play"), ("protocol", "rtmp")]
            ),
            Some(7.0)
        );
        assert_eq!(m("srs_proxy_sessions_total", &[("protocol", "rtmp")]), None);
        assert_eq!(m("srs_proxy_sessions_total", &[]), None);
        assert_eq!(
            m(
                "srs_proxy_origin_streams",
                &[("origin", "a/s,\"1\""), ("device_id", "")]
            ),
            Some(2.0)
        );
        assert_eq!(m("srs_proxy_origin_dial_failures_total", &[]), Some(1.0));
        assert_eq!(m("srs_proxy_origin_dial_failures", &[]), None);
        assert_eq!(m("srs_proxy_uptime_seconds", &[]), Some(12.5));
    }
}
