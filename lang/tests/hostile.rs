//! Inputs no configuration needs, made to break the parser or the evaluator:
//! each ends with one located error, never a stack overflow, an abort on
//! allocation or minutes of work (issue 14, item 12). They run on the test
//! harness's own small thread stacks on purpose.
use std::path::Path;

use ferry_lang::inventory::{HostEntry, InventoryResolver, InventorySource};
use ferry_lang::SourceLoader;

struct One(String);

impl SourceLoader for One {
    fn load(&self, _path: &Path) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

struct NoHosts;

impl InventoryResolver for NoHosts {
    fn resolve(&self, _source: &InventorySource) -> Result<Vec<HostEntry>, String> {
        Ok(Vec::new())
    }
}

/// The first error of `text` as `line:column: message`.
fn first_error(text: String) -> String {
    let diagnostics = ferry_lang::evaluate_site(&One(text), Path::new("/site.conf"), &NoHosts)
        .expect_err("a hostile site must not evaluate");
    let first = &diagnostics.items[0];
    let at = diagnostics.location(first.span.expect("a located error"));
    let at = at.trim_start_matches("/site.conf:");
    format!("{at}: {}", first.message)
}

/// `let x = EXPR` used by a service, so it is evaluated.
fn site_with(binding: &str) -> String {
    format!("{binding}\nclass web {{ service app {{ exec = \"run ${{x}}\" }} }}\n")
}

fn repeat(piece: &str, n: usize) -> String {
    piece.repeat(n)
}

#[test]
fn a_sum_of_ten_thousand_terms_is_an_error_not_a_stack_overflow() {
    let sum = vec!["1"; 10_000].join(" + ");
    let error = first_error(site_with(&format!("let x = {sum}")));
    assert!(
        error.ends_with("expressions nest deeper than 64 levels"),
        "{error}"
    );
    assert!(error.starts_with("1:"), "{error}");
}

#[test]
fn ten_thousand_chained_fields_indexes_updates_and_nots_are_errors() {
    for expr in [
        format!("{{a = 1}}{}", repeat(".a", 10_000)),
        format!("[1]{}", repeat("[0]", 10_000)),
        format!("{{}}{}", repeat(" // {}", 10_000)),
        format!("{}true", repeat("!", 10_000)),
        format!("\"\"{}", repeat(" + \"s\"", 10_000)),
        format!("{}1{}", repeat("(", 10_000), repeat(")", 10_000)),
    ] {
        let error = first_error(site_with(&format!("let x = {expr}")));
        assert!(
            error.ends_with("expressions nest deeper than 64 levels"),
            "{}: {error}",
            &expr[..20]
        );
    }
}

#[test]
fn a_chain_of_ten_thousand_lets_is_an_error_not_a_stack_overflow() {
    let mut text = String::from("let a0 = 1\n");
    for i in 1..=10_000 {
        text.push_str(&format!("let a{i} = a{} + 1\n", i - 1));
    }
    text.push_str("class web { service app { exec = \"run ${a10000}\" } }\n");
    let error = first_error(text);
    assert!(
        error.ends_with("evaluation nests deeper than 1024 levels"),
        "{error}"
    );
}

#[test]
fn a_huge_range_and_a_string_doubled_forty_times_are_errors_not_aborts() {
    let error = first_error(site_with("let x = length(range(100000000))"));
    assert_eq!(error, "1:16: evaluation takes more than 20000000 steps");

    let mut text = String::from("let a0 = \"x\"\n");
    for i in 1..=40 {
        text.push_str(&format!("let a{i} = a{} + a{}\n", i - 1, i - 1));
    }
    text.push_str("class web { service app { exec = \"run ${a40}\" } }\n");
    let error = first_error(text);
    assert!(
        error.ends_with("the site's values take more than 256 MiB"),
        "{error}"
    );
}

/// `NAME0 = [1]`, then 59 lists each holding the previous one twice: 2^59
/// nodes as a tree, 60 values shared.
fn doubling_lists(name: &str) -> String {
    let mut text = format!("let {name}0 = [1]\n");
    for i in 1..60 {
        text.push_str(&format!(
            "let {name}{i} = [{name}{}, {name}{}]\n",
            i - 1,
            i - 1
        ));
    }
    text
}

#[test]
fn comparing_huge_shared_nested_lists_ends_at_the_step_bound() {
    let mut text = doubling_lists("l") + &doubling_lists("m");
    text.push_str("let x = if l59 == m59 then \"a\" else \"b\"\n");
    text.push_str("class web { service app { exec = \"run ${x}\" } }\n");
    let error = first_error(text);
    assert_eq!(error, "121:12: evaluation takes more than 20000000 steps");
}

#[test]
fn a_list_compared_with_itself_is_equal_without_a_walk() {
    let mut text = doubling_lists("l");
    text.push_str("let x = if l59 == l59 then \"same\" else \"different\"\n");
    text.push_str("class web { service app { exec = \"run ${x}\" } }\n");
    let site = ferry_lang::evaluate_site(&One(text), Path::new("/site.conf"), &NoHosts)
        .map_err(|d| d.render_plain())
        .unwrap();
    let json = serde_json::to_string(&site).unwrap();
    assert!(json.contains("run same"), "{json}");
}

#[test]
fn a_ten_megabyte_line_is_shown_as_a_window_around_the_error() {
    let long = "a".repeat(10 << 20);
    let text = site_with(&format!("let x = \"{long}\" + 5"));
    let diagnostics = ferry_lang::evaluate_site(&One(text), Path::new("/site.conf"), &NoHosts)
        .expect_err("a string plus an integer is an error");
    let rendered = diagnostics.render_plain();
    assert!(rendered.len() < 4096, "{} bytes rendered", rendered.len());
    assert!(rendered.contains("/site.conf:1:9"), "{rendered}");
    assert!(rendered.contains("cannot apply `+`"), "{rendered}");
}
