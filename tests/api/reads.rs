//! The read path: filters, paging, failover to replicas.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

async fn seed(app: &TestApp) {
    let rows = [
        ("a1", 1000, "São Paulo", "SP"),
        ("a2", 1500, "Campinas", "SP"),
        ("a3", 39999, "a.c city", "RJ"),
        ("b1", 40000, "ABC town", "MG"),
        ("b2", 50000, "Belo Horizonte", "MG"),
        ("c1", 70000, "Curitiba", "PR"),
        ("c2", 99999, "Porto Alegre", "RS"),
    ];
    for (id, zip, city, state) in rows {
        let mut body = customer(id, zip);
        body["customer_city"] = json!(city);
        body["customer_state"] = json!(state);
        app.stored(&body).await;
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| r["customer_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_match_ranges_and_text_and_page_exactly_across_regions() {
    let app = TestApp::spawn("read_filters").await;
    seed(&app).await;
    let get = |q: &'static str| {
        let app = &app;
        async move {
            let (code, body) = app.get(&format!("/filter-records{q}")).await;
            assert_eq!(code, StatusCode::OK, "{q}: {body}");
            body
        }
    };

    let all = get("").await;
    assert_eq!(ids(&all), ["a1", "a2", "a3", "b1", "b2", "c1", "c2"]);
    assert_eq!(all["total"], 7);
    assert_eq!(all["unavailable_regions"], json!([]));
    let first = &all["records"][0];
    for field in [
        "customer_unique_id",
        "customer_zip_code_prefix",
        "customer_city",
        "customer_state",
    ] {
        assert!(!first[field].is_null(), "{field}");
    }
    assert_eq!(first["region"], "region_1");
    assert_eq!(first["served_by"], "region_1");

    // Inclusive range, across a region boundary.
    assert_eq!(
        ids(&get("?zipRangeMin=39999&zipRangeMax=40000").await),
        ["a3", "b1"]
    );
    // Case-insensitive substring, accents kept.
    assert_eq!(ids(&get("?city=paulo").await), ["a1"]);
    assert_eq!(ids(&get("?city=S%C3%83O").await), Vec::<String>::new());
    assert_eq!(ids(&get("?state=mg").await), ["b1", "b2"]);
    // Text is text: "." matches only a dot, "(" is not a regex error.
    assert_eq!(ids(&get("?city=a.c").await), ["a3"]);
    assert_eq!(ids(&get("?city=%28").await), Vec::<String>::new());
    assert_eq!(ids(&get("?region=region_3").await), ["c1", "c2"]);

    // Pages cut across regions exactly, with the total of the whole match.
    let page = get("?limit=2&offset=2").await;
    assert_eq!(ids(&page), ["a3", "b1"]);
    assert_eq!(page["total"], 7);
    assert_eq!(ids(&get("?limit=3&offset=5").await), ["c1", "c2"]);
    assert_eq!(ids(&get("?offset=100").await), Vec::<String>::new());

    // The seed's POST form, with strings.
    let (code, body) = app
        .post(
            "/filter-records",
            &json!({"zipRangeMin": "40000", "zipRangeMax": 69999, "city": ""}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ids(&body), ["b1", "b2"]);

    // Empty result is 200 with [].
    let none = get("?city=nowhere").await;
    assert_eq!(none["records"], json!([]));
    assert_eq!(none["total"], 0);
}

#[tokio::test]
async fn reads_fail_over_to_the_replica_and_name_unreachable_regions() {
    let app = TestApp::spawn("read_failover").await;
    seed(&app).await;

    app.set_status("region_2", "unavailable").await;
    let (_, body) = app.get("/filter-records?region=region_2").await;
    assert_eq!(ids(&body), ["b1", "b2"]);
    for r in body["records"].as_array().unwrap() {
        assert_eq!(r["served_by"], "region_1");
        assert_eq!(r["region"], "region_2");
    }
    assert_eq!(body["sources"][0]["replica"], true);

    // region_2's replica lives on region_1: both down, region_2 is gone;
    // region_1 itself is served by its replica on region_3.
    app.set_status("region_1", "unavailable").await;
    let (_, body) = app.get("/filter-records").await;
    assert_eq!(body["unavailable_regions"], json!(["region_2"]));
    assert_eq!(ids(&body), ["a1", "a2", "a3", "c1", "c2"]);
    assert_eq!(body["records"][0]["served_by"], "region_3");
    assert_eq!(body["total"], 5);
}

#[tokio::test]
async fn a_frozen_home_node_is_read_from_its_replica() {
    let Some(app) = TestApp::spawn_for_faults("read_frozen", Options::default()).await else {
        return;
    };
    seed(&app).await;
    app.freeze_mongo("region_3");
    let (code, body) = app.get("/filter-records?region=region_3").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ids(&body), ["c1", "c2"]);
    assert_eq!(body["records"][0]["served_by"], "region_2");
    app.thaw_mongo("region_3");
}
