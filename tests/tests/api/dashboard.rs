//! The sample Grafana dashboard (`deploy/grafana/parley-dashboard.json`) queries only
//! metrics and labels the homeserver exports.
//!
//! Labelled metrics appear on `/metrics` only once a label value was used, so what the
//! homeserver exports is read from the source that declares it (`homeserver/src/metrics.rs`),
//! and that reading is checked against a live homeserver's `/metrics`: every metric it
//! shows must be declared with the same kind and labels, and every metric without
//! labels must be shown.

use std::collections::{BTreeMap, BTreeSet};

use parley_tests::TestServer;

const DASHBOARD: &str = include_str!("../../../deploy/grafana/parley-dashboard.json");
const METRICS_SOURCE: &str = include_str!("../../../homeserver/src/metrics.rs");
/// Documents that name metrics, which must be metrics the homeserver exports. (The
/// README names none since it was trimmed to what a newcomer needs.)
const DOCS: &[(&str, &str)] = &[
    (
        "specs/operator-guide.md",
        include_str!("../../../specs/operator-guide.md"),
    ),
    ("specs/protocol.md", include_str!("../../../specs/protocol.md")),
];
/// `parley_*` words in those documents that are not metrics: crates, a log filter, the
/// PostgreSQL channel of inbox wake-ups.
const NOT_METRICS: &[&str] = &[
    "parley_sdk",
    "parley_homeserver",
    "parley_federation",
    "parley_specs",
    "parley_inbox",
    // MLS extensions of the group policy (protocol.md, "Roles, names and topics").
    "parley_group_policy",
    "parley_group_key",
];

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: &[&str] = &["instance", "job"];
const HISTOGRAM_SUFFIXES: &[&str] = &["_bucket", "_sum", "_count"];

#[derive(Debug, PartialEq, Eq)]
struct Declared {
    histogram: bool,
    labels: BTreeSet<String>,
}

/// The metrics `metrics.rs` registers, by their exported name (with the `parley_` prefix).
fn declared_metrics() -> BTreeMap<String, Declared> {
    assert!(
        METRICS_SOURCE.contains(r#"Registry::new_custom(Some("parley".into())"#),
        "metrics.rs no longer prefixes its metrics with parley_; update this test"
    );
    let mut declared = BTreeMap::new();
    for statement in METRICS_SOURCE.split("let ").skip(1) {
        let statement = &statement[..statement_end(statement)];
        let Some(name) = statement
            .split("::new(")
            .skip(1)
            .find_map(|after| leading_literal(after.trim_start()))
        else {
            continue;
        };
        let labels = match statement.find("&[") {
            Some(start) => {
                let list = &statement[start + 2..];
                let list = &list[..list.find(']').expect("a closed label list")];
                list.split(',')
                    .filter_map(|item| leading_literal(item.trim()))
                    .map(str::to_owned)
                    .collect()
            }
            None => BTreeSet::new(),
        };
        let metric = Declared {
            histogram: statement.contains("Histogram"),
            labels,
        };
        declared.insert(format!("parley_{name}"), metric);
    }
    assert!(
        declared.len() >= 10,
        "too few metrics found in metrics.rs: {declared:?}"
    );
    declared
}

/// Where the Rust statement at the start of `code` ends: its first `;` outside a string.
fn statement_end(code: &str) -> usize {
    let bytes = code.as_bytes();
    let mut in_string = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_string => i += 1,
            b'"' => in_string = !in_string,
            b';' if !in_string => return i,
            _ => {}
        }
        i += 1;
    }
    code.len()
}

/// The string literal `text` starts with, when it is a metric or label name.
fn leading_literal(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('"')?;
    let literal = &rest[..rest.find('"')?];
    let is_name = !literal.is_empty()
        && literal
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    is_name.then_some(literal)
}

/// The declared metric a sample or query name belongs to (histograms have suffixed series).
fn metric_of<'a>(name: &str, declared: &'a BTreeMap<String, Declared>) -> Option<(&'a str, &'a Declared)> {
    if let Some((base, metric)) = declared.get_key_value(name) {
        return Some((base.as_str(), metric));
    }
    HISTOGRAM_SUFFIXES.iter().find_map(|suffix| {
        let (base, metric) = declared.get_key_value(name.strip_suffix(suffix)?)?;
        metric.histogram.then_some((base.as_str(), metric))
    })
}

#[tokio::test]
async fn the_declared_metrics_are_what_the_homeserver_exports() {
    let declared = declared_metrics();
    let server = TestServer::spawn().await;
    let _ = server
        .http()
        .get(server.endpoint_url("/health"))
        .send()
        .await
        .expect("GET /health");
    let _ = server.metrics().await;
    let text = server.metrics().await;

    let mut seen = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            let metric = declared
                .get(name)
                .unwrap_or_else(|| panic!("/metrics has {name}, which metrics.rs does not declare"));
            assert_eq!(metric.histogram, kind == "histogram", "{name} is a {kind}");
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample line");
        let name = &line[..name_end];
        let (base, metric) = metric_of(name, &declared)
            .unwrap_or_else(|| panic!("/metrics has {name}, which metrics.rs does not declare"));
        let mut labels = BTreeSet::new();
        if let Some(inner) = line[name_end..].strip_prefix('{') {
            let inner = &inner[..inner.rfind('}').expect("closed labels")];
            labels.extend(selector_labels(inner));
        }
        if name.ends_with("_bucket") {
            assert!(labels.remove("le"), "{line}");
        }
        assert_eq!(labels, metric.labels, "labels of {line}");
        seen.insert(base.to_owned());
    }
    for (name, metric) in &declared {
        if metric.labels.is_empty() {
            assert!(seen.contains(name), "{name} is declared but not exported:\n{text}");
        }
    }
    for name in [
        "parley_http_requests_total",
        "parley_http_request_duration_seconds",
        "parley_db_pool_connections",
    ] {
        assert!(seen.contains(name), "{name} is not exported after traffic:\n{text}");
    }
}

#[test]
fn the_dashboard_queries_only_exported_metrics_and_labels() {
    let declared = declared_metrics();
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "schemaVersion"
    );
    let variables: BTreeMap<&str, &str> = dashboard["templating"]["list"]
        .as_array()
        .expect("templating variables")
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap_or_default(),
                v["type"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(variables.get("DS_PROMETHEUS"), Some(&"datasource"), "{variables:?}");
    assert_eq!(variables.get("instance"), Some(&"query"), "{variables:?}");

    let mut queries = Vec::new();
    let mut legends = Vec::new();
    let mut names = Vec::new();
    let mut targets = 0;
    walk(&dashboard, &mut |key, value| {
        match key {
            "expr" | "definition" => queries.push(value.to_owned()),
            "legendFormat" => legends.push(value.to_owned()),
            _ => {}
        }
        targets += usize::from(key == "expr");
        names.extend(words(value).into_iter().filter(|w| w.starts_with("parley_")));
    });
    assert!(targets >= 20, "the dashboard has only {targets} queries");
    for name in &names {
        assert!(
            metric_of(name, &declared).is_some(),
            "the dashboard uses {name}, which the homeserver does not export"
        );
    }

    let all_labels: BTreeSet<&str> = declared
        .values()
        .flat_map(|m| m.labels.iter().map(String::as_str))
        .chain(TARGET_LABELS.iter().copied())
        .chain(["le"])
        .collect();
    for query in &queries {
        for (metric, labels) in selectors(query) {
            let (_, declared_metric) =
                metric_of(&metric, &declared).unwrap_or_else(|| panic!("{query}: {metric} is not exported"));
            for label in labels {
                let known = declared_metric.labels.contains(&label)
                    || TARGET_LABELS.contains(&label.as_str())
                    || (label == "le" && metric.ends_with("_bucket"));
                assert!(known, "{query}: {metric} has no label {label}");
            }
        }
        for label in grouping_labels(query) {
            assert!(
                all_labels.contains(label.as_str()),
                "{query}: no metric has the label {label}"
            );
        }
    }
    for legend in &legends {
        for label in legend
            .split("{{")
            .skip(1)
            .filter_map(|s| s.split_once("}}"))
            .map(|(l, _)| l.trim())
        {
            assert!(
                all_labels.contains(label),
                "legend {legend}: no metric has the label {label}"
            );
        }
    }
}

#[test]
fn the_docs_name_only_exported_metrics() {
    let declared = declared_metrics();
    for (file, text) in DOCS {
        let mut named = 0;
        for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if !word.starts_with("parley_") || NOT_METRICS.contains(&word) {
                continue;
            }
            assert!(
                metric_of(word, &declared).is_some(),
                "{file} names {word}, which the homeserver does not export"
            );
            named += 1;
        }
        assert!(named > 0, "{file} names no metric; is this list still right?");
    }
}

/// Calls `visit` with every string value in `value` and the key it is under.
fn walk(value: &serde_json::Value, visit: &mut impl FnMut(&str, &str)) {
    fn inner(key: &str, value: &serde_json::Value, visit: &mut impl FnMut(&str, &str)) {
        match value {
            serde_json::Value::String(s) => visit(key, s),
            serde_json::Value::Array(items) => items.iter().for_each(|item| inner(key, item, visit)),
            serde_json::Value::Object(map) => map.iter().for_each(|(k, v)| inner(k, v, visit)),
            _ => {}
        }
    }
    inner("", value, visit);
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b':'
}

/// A PromQL query as words and punctuation, quoted strings left out.
#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Punct(char),
}

fn tokens(query: &str) -> Vec<Token> {
    let bytes = query.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' || b == b'\'' || b == b'`' {
            i += 1;
            while i < bytes.len() && bytes[i] != b {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else if is_word_byte(b) {
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            out.push(Token::Word(query[start..i].to_owned()));
        } else {
            if !b.is_ascii_whitespace() {
                out.push(Token::Punct(char::from(b)));
            }
            i += 1;
        }
    }
    out
}

fn words(text: &str) -> Vec<String> {
    tokens(text)
        .into_iter()
        .filter_map(|t| match t {
            Token::Word(w) => Some(w),
            Token::Punct(_) => None,
        })
        .collect()
}

/// The label names of a selector's inside (`a="x", b=~"y"`) or of a sample line's labels.
fn selector_labels(inner: &str) -> Vec<String> {
    let mut labels = Vec::new();
    let mut expect_name = true;
    for token in tokens(inner) {
        match token {
            Token::Word(w) if expect_name => {
                labels.push(w);
                expect_name = false;
            }
            Token::Punct(',') => expect_name = true,
            _ => {}
        }
    }
    labels
}

/// Each `parley_*{...}` selector of a query: the metric and the labels it matches on.
fn selectors(query: &str) -> Vec<(String, Vec<String>)> {
    let tokens = tokens(query);
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(name) = token else { continue };
        if !name.starts_with("parley_") {
            continue;
        }
        let mut labels = Vec::new();
        if tokens.get(i + 1) == Some(&Token::Punct('{')) {
            let mut expect_name = true;
            for t in &tokens[i + 2..] {
                match t {
                    Token::Punct('}') => break,
                    Token::Punct(',') => expect_name = true,
                    Token::Word(w) if expect_name => {
                        labels.push(w.clone());
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        }
        out.push((name.clone(), labels));
    }
    out
}

/// Labels named in `by (...)`, `without (...)` and `label_values(metric, label)`.
fn grouping_labels(query: &str) -> Vec<String> {
    let tokens = tokens(query);
    let mut out = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(word) = token else { continue };
        if tokens.get(i + 1) != Some(&Token::Punct('(')) {
            continue;
        }
        let inside = tokens[i + 2..].iter().take_while(|t| **t != Token::Punct(')'));
        match word.as_str() {
            "by" | "without" => out.extend(inside.filter_map(|t| match t {
                Token::Word(w) => Some(w.clone()),
                Token::Punct(_) => None,
            })),
            "label_values" => {
                let args: Vec<&Token> = inside.collect();
                if let Some(Token::Word(label)) = args.last() {
                    out.push(label.clone());
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn the_query_scanner_finds_metrics_and_labels() {
    let query = r#"histogram_quantile(0.99, sum by (le, route) (rate(parley_x_bucket{instance=~"$i", route!~"/a|b"}[$__rate_interval])))"#;
    assert_eq!(
        selectors(query),
        vec![(
            "parley_x_bucket".to_owned(),
            vec!["instance".to_owned(), "route".to_owned()]
        )]
    );
    assert_eq!(grouping_labels(query), vec!["le".to_owned(), "route".to_owned()]);
    assert_eq!(
        grouping_labels("label_values(parley_y, instance)"),
        vec!["instance".to_owned()]
    );
    let declared = declared_metrics();
    assert_eq!(
        declared.get("parley_http_requests_total"),
        Some(&Declared {
            histogram: false,
            labels: ["route", "method", "status"].map(str::to_owned).into()
        })
    );
    assert!(declared["parley_push_latency_seconds"].histogram);
}
