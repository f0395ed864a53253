use super::*;

fn base(extra_source: &str) -> String {
    std::env::set_var("CCDC_TEST_CFG_TOKEN", "tok");
    format!(
        r#"
output = "stdout"
[[sources]]
vendor = "wolkvox"
name = "ops-a"
base_url = "https://wv001.wolkvox.com/api/v2"
token = {{ env = "CCDC_TEST_CFG_TOKEN" }}
time_zone = "America/Bogota"
{extra_source}
"#
    )
}

fn err_of(text: &str) -> String {
    Config::from_toml_str(text).unwrap_err().to_string()
}

#[test]
fn minimal_stdout_config_is_valid_with_documented_defaults() {
    let c = Config::from_toml_str(&base("")).unwrap();
    let SourceConfig::Wolkvox(w) = &c.sources[0] else {
        panic!("wolkvox expected")
    };
    assert_eq!(w.interactions.interval, Duration::from_secs(300));
    assert_eq!(w.max_concurrent_requests, 1);
    assert_eq!(w.request_timeout, Duration::from_secs(60));
    assert_eq!(c.topics.interactions, "ccdc.interactions");
}

#[test]
fn record_headers_default_to_cloudevents_and_the_old_booleans_keep_their_meaning() {
    let text = |extra: &str| {
        format!(
            "{}\n[kafka]\nbootstrap_servers = \"k:9092\"\n{extra}\n[schema_registry]\nurl = \"http://r:8081\"\n",
            base("").replace("output = \"stdout\"", "")
        )
    };
    let kafka = |extra: &str| {
        Config::from_toml_str(&text(extra))
            .unwrap()
            .kafka
            .unwrap()
            .record_headers
    };
    assert_eq!(kafka(""), RecordHeaders::CloudEvents);
    assert_eq!(
        kafka("record_headers = \"cloudevents\""),
        RecordHeaders::CloudEvents
    );
    assert_eq!(
        kafka("record_headers = \"minimal\""),
        RecordHeaders::Minimal
    );
    assert_eq!(kafka("record_headers = \"none\""), RecordHeaders::None);
    // `true` always meant the `ccdc.*` headers: consumers reading them keep them.
    assert_eq!(kafka("record_headers = true"), RecordHeaders::Minimal);
    assert_eq!(kafka("record_headers = false"), RecordHeaders::None);
    let err = Config::from_toml_str(&text("record_headers = \"ce\""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("record_headers") && err.contains("cloudevents"),
        "{err}"
    );
}

#[test]
fn the_state_cache_defaults_to_64_mib_and_is_bounded() {
    let with = |line: &str| {
        base("").replace(
            "output = \"stdout\"",
            &format!("output = \"stdout\"\n{line}"),
        )
    };
    assert_eq!(Config::from_toml_str(&base("")).unwrap().state_cache_mb, 64);
    assert_eq!(
        Config::from_toml_str(&with("state_cache_mb = 16"))
            .unwrap()
            .state_cache_mb,
        16
    );
    for bad in ["state_cache_mb = 0", "state_cache_mb = 65537"] {
        assert!(err_of(&with(bad)).contains("state_cache_mb"), "{bad}");
    }
}

#[test]
fn errors_name_the_key() {
    assert!(
        err_of(&base("max_concurrent_requests = 3")).contains("sources[0].max_concurrent_requests")
    );
    assert!(err_of(&base("request_timeout = \"61s\"")).contains("sources[0].request_timeout"));
    assert!(err_of(&base("").replace("America/Bogota", "Mars/Olympus"))
        .contains("sources[0].time_zone"));
    assert!(
        err_of(&base("").replace("CCDC_TEST_CFG_TOKEN\"", "CCDC_NOPE_TOKEN\""))
            .contains("CCDC_NOPE_TOKEN")
    );
    assert!(err_of(&base("").replace("https://", "http://")).contains("allow_insecure_http"));
    assert!(err_of(&base("").replace("output = \"stdout\"", "")).contains("`kafka`"));
}

#[test]
fn unknown_keys_and_duplicate_names_are_rejected() {
    assert!(err_of(&base("colour = \"blue\"")).contains("colour"));
    let twice = format!(
        "{}\n{}",
        base(""),
        base("").replace("output = \"stdout\"", "")
    );
    assert!(err_of(&twice).contains("duplicate source name `ops-a`"));
}

#[test]
fn registry_ca_file_must_be_a_readable_pem_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let text = |ca: &std::path::Path| {
        format!(
                "{}\n[kafka]\nbootstrap_servers = \"k:9092\"\n[schema_registry]\nurl = \"https://r:8081\"\nca_file = {:?}\n",
                base("").replace("output = \"stdout\"", ""),
                ca.display().to_string()
            )
    };
    assert!(err_of(&text(&bad)).contains("schema_registry.ca_file"));
    assert!(err_of(&text(&dir.path().join("missing.pem"))).contains("cannot read"));
}

#[test]
fn weakening_the_delivery_guarantee_is_refused() {
    let text = format!(
            "{}\n[kafka]\nbootstrap_servers = \"k:9092\"\n[kafka.properties]\n\"enable.idempotence\" = \"false\"\n[schema_registry]\nurl = \"http://r:8081\"\n",
            base("").replace("output = \"stdout\"", "")
        );
    assert!(err_of(&text).contains("kafka.properties.enable.idempotence"));
    // The partitioner is a key of its own (murmur2_random by default), not a free property.
    let partitioner = text.replace(
        "[kafka.properties]\n\"enable.idempotence\" = \"false\"\n",
        "partitioner = \"crc32\"\n",
    );
    assert!(
        err_of(&partitioner).contains("kafka.partitioner"),
        "{partitioner}"
    );
    let as_property = text.replace(
        "\"enable.idempotence\" = \"false\"",
        "\"partitioner\" = \"random\"",
    );
    assert!(err_of(&as_property).contains("kafka.properties.partitioner"));
}

#[test]
fn environment_overrides_keys_and_ignores_unrelated_variables() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, base("")).unwrap();
    std::env::set_var("CCDC_STATE_DIR", "/tmp/from-env");
    std::env::set_var("CCDC_SOME_TOKEN_FOR_TESTS", "not-a-key");
    let c = Config::load(Some(&p)).unwrap();
    std::env::remove_var("CCDC_STATE_DIR");
    assert_eq!(c.state_dir, PathBuf::from("/tmp/from-env"));
    assert!(Config::load(Some(&dir.path().join("missing.toml")))
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
}

#[test]
fn comm100_and_vonage_sources_validate_with_named_keys() {
    std::env::set_var("CCDC_TEST_CFG_SECRET", "s");
    let comm100 = r#"
output = "stdout"
[[sources]]
vendor = "comm100"
name = "c"
base_url = "https://api11.comm100.io/v4"
token = { env = "CCDC_TEST_CFG_SECRET" }
"#;
    let c = Config::from_toml_str(comm100).unwrap();
    let SourceConfig::Comm100(cc) = &c.sources[0] else {
        panic!("comm100 expected")
    };
    assert_eq!(
        (cc.agents.interval, cc.queue.interval),
        (Duration::from_secs(60), Duration::from_secs(60))
    );
    assert!(err_of(&comm100.replace("https://", "http://")).contains("sources[0].base_url"));
    assert!(err_of(&format!("{comm100}page_size = 0\n")).contains("sources[0].page_size"));
    assert!(err_of(&format!("{comm100}max_pages = 0\n")).contains("sources[0].max_pages"));
    assert!(err_of(&format!("{comm100}max_pages = 20000\n")).contains("must be 1..=10000"));
    assert!(
        err_of(&format!("{comm100}[sources.queue]\ninterval = \"1ms\"\n"))
            .contains("sources[0].queue.interval")
    );

    let vonage = r#"
output = "stdout"
[[sources]]
vendor = "vonage"
name = "v"
base_url = "https://emea.newvoicemedia.com"
account_key = "acc"
token_url = "https://emea.newvoicemedia.com/Auth/connect/token"
client_id = "id"
client_secret = { env = "CCDC_TEST_CFG_SECRET" }
agent_ids = ["1", "2"]
"#;
    Config::from_toml_str(vonage).unwrap();
    assert!(
        err_of(&vonage.replace(r#"agent_ids = ["1", "2"]"#, "agent_ids = []"))
            .contains("sources[0].agent_ids")
    );
    assert!(err_of(&vonage.replace(r#"["1", "2"]"#, r#"["1", "../x"]"#))
        .contains("sources[0].agent_ids"));
    assert!(err_of(&format!("{vonage}requests_per_second = 0.0\n"))
        .contains("sources[0].requests_per_second"));
    assert!(
        err_of(&vonage.replace("CCDC_TEST_CFG_SECRET", "CCDC_TEST_CFG_NOPE"))
            .contains("sources[0].client_secret")
    );
}

#[test]
fn two_streams_on_one_topic_are_refused() {
    let text = format!(
        "{}\n[topics]\nagent_status = \"ccdc.interactions\"\n",
        base("")
    );
    assert!(err_of(&text).contains("topics.agent_status"));
}

#[test]
fn inline_secrets_are_not_accepted() {
    let e = err_of(&base("").replace("{ env = \"CCDC_TEST_CFG_TOKEN\" }", "\"plain-token\""));
    assert!(
        e.contains("inline secret values are refused") && e.contains("sources"),
        "{e}"
    );
    assert!(
        !e.contains("plain-token"),
        "the value must not be echoed: {e}"
    );
}

/// A kafka-output config: `kafka` lines go under `[kafka]` (before any sub-table), `registry`
/// lines under `[schema_registry]` (whose url is plain http unless `registry` sets another).
fn kafka_text(kafka: &str, registry: &str) -> String {
    let url = if registry.contains("url =") {
        ""
    } else {
        "url = \"http://r:8081\"\n"
    };
    format!(
        "{}\n[schema_registry]\n{url}{registry}\n[kafka]\nbootstrap_servers = \"k:9092\"\n{kafka}\n",
        base("").replace("output = \"stdout\"", "")
    )
}

#[test]
fn comm100_away_statuses_url_must_be_on_the_base_urls_origin() {
    std::env::set_var("CCDC_TEST_CFG_C100", "bearer-token");
    let with = |url: &str, extra: &str| {
        format!(
            "output = \"stdout\"\n[[sources]]\nvendor = \"comm100\"\nname = \"c\"\nbase_url = \"https://api11.comm100.io/v4\"\ntoken = {{ env = \"CCDC_TEST_CFG_C100\" }}\naway_statuses_url = {url:?}\n{extra}"
        )
    };
    Config::from_toml_str(&with(
        "https://api11.comm100.io/v3/globalSettings/agentAwayStatuses",
        "",
    ))
    .expect("same origin, another path");
    Config::from_toml_str(&with(
        "https://API11.comm100.io:443/v3/globalSettings/agentAwayStatuses",
        "",
    ))
    .expect("the same origin spelled differently");
    for other in [
        "https://evil.example.com/agentAwayStatuses",
        "https://api12.comm100.io/v3/globalSettings/agentAwayStatuses",
        "https://api11.comm100.io:8443/v3/globalSettings/agentAwayStatuses",
        "http://api11.comm100.io/v3/globalSettings/agentAwayStatuses",
    ] {
        let e = err_of(&with(other, "allow_insecure_http = true\n"));
        assert!(
            e.contains("sources[0].away_statuses_url") && e.contains("origin"),
            "{other}: {e}"
        );
    }
}

#[test]
fn registry_credentials_over_plain_http_need_the_opt_in() {
    std::env::set_var("CCDC_TEST_CFG_REG_PASS", "registry-pass-value");
    let creds = "username = \"ccdc\"\npassword = { env = \"CCDC_TEST_CFG_REG_PASS\" }\n";
    let e = err_of(&kafka_text("", creds));
    assert!(
        e.contains("schema_registry.allow_insecure_http") && !e.contains("registry-pass-value"),
        "{e}"
    );
    let c = Config::from_toml_str(&kafka_text(
        "",
        &format!("{creds}allow_insecure_http = true\n"),
    ))
    .expect("explicitly allowed");
    assert!(c.schema_registry.unwrap().allow_insecure_http);
    Config::from_toml_str(&kafka_text("", "")).expect("plain http without credentials");
    Config::from_toml_str(&kafka_text(
        "",
        &format!("url = \"https://r:8081\"\n{creds}"),
    ))
    .expect("https with credentials");
}

#[test]
fn secret_property_keys_must_be_librdkafka_secret_keys() {
    std::env::set_var("CCDC_TEST_CFG_KAFKA_SECRET", "kafka-secret-value-7");
    let secret = |key: &str| {
        kafka_text(
            &format!(
                "[kafka.secret_properties]\n{key:?} = {{ env = \"CCDC_TEST_CFG_KAFKA_SECRET\" }}\n"
            ),
            "",
        )
    };
    for ok in [
        "sasl.password",
        "ssl.key.password",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "ssl.key.pem",
    ] {
        Config::from_toml_str(&secret(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["sasl.passwrod", "client.id", "ssl_key", "Sasl.Password "] {
        let e = err_of(&secret(bad));
        assert!(
            e.contains(&format!("kafka.secret_properties.{bad}")),
            "names the key: {e}"
        );
        assert!(!e.contains("kafka-secret-value-7"), "no value: {e}");
    }
}

#[test]
fn secret_valued_keys_are_refused_in_plain_properties_without_echoing_the_value() {
    for key in [
        "sasl.password",
        "ssl.key.password",
        "ssl.key.pem",
        "ssl.keystore.password",
        "sasl.oauthbearer.client.secret",
        "SASL.PASSWORD",
    ] {
        let e = err_of(&kafka_text(
            &format!("[kafka.properties]\n{key:?} = \"plain-secret-value-3\"\n"),
            "",
        ));
        assert!(
            e.contains(&format!("kafka.properties.{key}")) && e.contains("secret_properties"),
            "{key}: {e}"
        );
        assert!(!e.contains("plain-secret-value-3"), "{key}: no value: {e}");
    }
}

#[test]
fn properties_that_break_delivery_silently_are_refused() {
    for (key, value) in [
        ("delivery.report.only.error", "true"),
        ("transactional.id", "ccdc-tx"),
        ("metadata.broker.list", "other:9092"),
    ] {
        let e = err_of(&kafka_text(
            &format!("[kafka.properties]\n{key:?} = {value:?}\n"),
            "",
        ));
        assert!(e.contains(&format!("kafka.properties.{key}")), "{e}");
    }
}

#[test]
fn vonage_sources_of_one_account_must_agree_on_its_limits() {
    std::env::set_var("CCDC_TEST_CFG_SECRET", "s");
    let source = |name: &str, base: &str, account: &str, rate: &str| {
        format!(
            "[[sources]]\nvendor = \"vonage\"\nname = \"{name}\"\nbase_url = \"{base}\"\naccount_key = \"{account}\"\ntoken_url = \"https://emea.newvoicemedia.com/Auth/connect/token\"\nclient_id = \"id\"\nclient_secret = {{ env = \"CCDC_TEST_CFG_SECRET\" }}\nagent_ids = [\"1\"]\nrequests_per_second = {rate}\n"
        )
    };
    let emea = "https://emea.newvoicemedia.com";
    let two = |a: String, b: String| format!("output = \"stdout\"\n{a}{b}");
    // The same account (the host's case and a trailing slash aside) with the same budget: fine.
    Config::from_toml_str(&two(
        source("v1", emea, "acc", "2"),
        source("v2", &format!("{}/", emea.to_uppercase()), "acc", "2"),
    ))
    .unwrap();
    // Another account, or another host: each its own budget.
    Config::from_toml_str(&two(
        source("v1", emea, "acc", "2"),
        source("v2", emea, "other", "5"),
    ))
    .unwrap();
    Config::from_toml_str(&two(
        source("v1", emea, "acc", "2"),
        source("v2", "https://nam.newvoicemedia.com", "acc", "5"),
    ))
    .unwrap();
    // One account, two budgets: refused, naming the key and both sources.
    let e = err_of(&two(
        source("v1", emea, "acc", "2"),
        source("v2", emea, "acc", "5"),
    ));
    assert!(e.contains("sources[1].requests_per_second"), "{e}");
    assert!(e.contains("`v2`") && e.contains("`v1`"), "{e}");
}
