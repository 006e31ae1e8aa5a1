//! `regiondb gen` and `regiondb import`: a generated file, some rows for an
//! unavailable node, one bad row.

use std::collections::BTreeMap;

use crate::helpers::*;

/// The default regions' home and replica of a zip prefix.
fn home_and_replica(zip: u32) -> (&'static str, &'static str) {
    match zip {
        1000..=39999 => ("region_1", "region_3"),
        40000..=69999 => ("region_2", "region_1"),
        _ => ("region_3", "region_2"),
    }
}

/// Per node: how many home copies and replica copies it should hold.
fn expected(csv: &str) -> BTreeMap<(&'static str, &'static str), u64> {
    let mut want = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
        let Ok(zip) = fields[2].parse::<u32>() else {
            continue;
        };
        let (home, replica) = home_and_replica(zip);
        *want.entry((home, "customers")).or_default() += 1;
        *want.entry((replica, home)).or_default() += 1;
    }
    want
}

fn collection(of: &str) -> String {
    if of == "customers" {
        of.to_owned()
    } else {
        format!("replica_{of}")
    }
}

#[tokio::test]
async fn a_generated_file_is_imported_routed_replicated_and_idempotently() {
    let app = TestApp::spawn("import").await;
    let generated = app.run_command(&["gen", "--count", "600", "--seed", "3"]);
    assert!(generated.status.success());
    let mut csv = String::from_utf8(generated.stdout).unwrap();
    assert!(csv.starts_with("customer_id,customer_unique_id,customer_zip_code_prefix"));
    // Line 602: a zip that is not a number.
    csv.push_str("\"bad-row\",\"u\",\"12x45\",\"sao paulo\",\"SP\"\n");
    let file = app.dir.join("customers.csv");
    std::fs::write(&file, &csv).unwrap();
    let want = expected(&csv);
    let file = file.display().to_string();

    // region_2 is off: its home copies, and the replicas it keeps (of
    // region_3), are queued in its topic.
    app.set_status("region_2", "unavailable").await;
    let run = app.run_command(&["import", &file]);
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(1), "a bad row: {stdout}{stderr}");
    assert!(
        stderr.contains("line 602: bad row: customer_zip_code_prefix"),
        "{stderr}"
    );
    let queued_home = want[&("region_2", "customers")];
    let stored_home = want[&("region_1", "customers")] + want[&("region_3", "customers")];
    assert!(stdout.contains("rows read        601\n"), "{stdout}");
    assert!(
        stdout.contains(&format!("stored           {stored_home}\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("queued           {queued_home}\n")),
        "{stdout}"
    );
    assert!(stdout.contains("bad              1\n"), "{stdout}");
    assert!(stdout.contains("failed           0\n"), "{stdout}");
    // Not a terminal: plain progress lines, no bar.
    assert!(!stderr.contains('\u{1b}'), "no escape codes: {stderr}");

    let queued = queued_home + want[&("region_2", "region_3")];
    let region_2 = counted_at(&app.http, &app.address, "region_2").await;
    assert_eq!(region_2["queued"], queued, "{region_2}");

    app.set_status("region_2", "available").await;
    app.wait_drained("region_2").await;
    let count_all = || async {
        let mut got = BTreeMap::new();
        for (node, of) in want.keys() {
            let n = app.docs(node, &collection(of)).await.len() as u64;
            got.insert((*node, *of), n);
        }
        got
    };
    assert_eq!(count_all().await, want);
    let before = app
        .doc(
            "region_1",
            "customers",
            csv.lines().nth(1).unwrap().split('"').nth(1).unwrap(),
        )
        .await;

    // Again, every node available: the same records, newer versions.
    let again = app.run_command(&["import", &file]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stdout).contains("stored           600\n"));
    assert_eq!(count_all().await, want);
    let first_id = csv
        .lines()
        .nth(1)
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    let (home, _) = home_and_replica(
        csv.lines()
            .nth(1)
            .unwrap()
            .split('"')
            .nth(5)
            .unwrap()
            .parse()
            .unwrap(),
    );
    let after = app
        .doc(home, "customers", &first_id)
        .await
        .expect("imported");
    if let Some(before) = before {
        assert!(after.get_i64("version").unwrap() > before.get_i64("version").unwrap());
    }
    assert!(app.doc("region_1", "customers", "bad-row").await.is_none());
}

#[tokio::test]
async fn a_missing_file_or_column_fails_at_once_with_exit_code_2() {
    let app = TestApp::spawn("import_errors").await;
    let run = app.run_command(&["import", "/nonexistent/customers.csv"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("cannot read"));
    let file = app.dir.join("no-zip.csv");
    std::fs::write(
        &file,
        "customer_id,customer_unique_id,customer_city,customer_state\n",
    )
    .unwrap();
    let run = app.run_command(&["import", &file.display().to_string()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("customer_zip_code_prefix"));
}

#[tokio::test]
async fn an_imported_row_whose_id_lives_in_another_region_moves_it() {
    let app = TestApp::spawn("import_moves").await;
    app.stored(&customer("c1", ZIP_1)).await;
    let file = app.dir.join("moved.csv");
    std::fs::write(
        &file,
        "customer_id,customer_unique_id,customer_zip_code_prefix,customer_city,customer_state\n\
         c1,u1,80000,curitiba,PR\n",
    )
    .expect("csv");
    let run = app.run_command(&["import", &file.display().to_string()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let old = app
        .doc("region_1", "customers", "c1")
        .await
        .expect("old home copy");
    assert_eq!(old.get_bool("deleted"), Ok(true), "{old}");
    assert!(!old.contains_key("customer_city"), "{old}");
    let (_, found) = app.get("/customers/c1").await;
    assert_eq!(found["region"], "region_3", "{found}");
    assert_eq!(found["customer_city"], "curitiba", "{found}");
    assert_eq!(found["divergent"], false, "{found}");
}
