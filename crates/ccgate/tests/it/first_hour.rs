//! Issue 18, "a user's first hour": refusals in the reports, fresh upstream errors, default credentials, backups
//! and readable tables.

use crate::common::*;

/// A clean shutdown leaves every row in `ccgate.db` itself (the WAL checkpointed), and `ccgate backup` copies a
/// running gateway's ledger, refusing to overwrite unless told to.
#[tokio::test]
async fn backups_are_complete_online_and_after_shutdown() {
    let m = mock().await;
    let mut gw = Gateway::start(&Files::new(&[m.url()])).await;
    for _ in 0..3 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    wait_requests(&gw, 3).await;

    let out_dir = TempDir::new("backup");
    let dest = out_dir.0.join("ccgate-backup.db");
    let dest_arg = dest.to_str().unwrap();
    let out = cli(&gw, &["backup", dest_arg]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(count_requests_in(&dest).await, 3);

    let again = cli(&gw, &["backup", dest_arg]).await;
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("--force"),
        "{}",
        output_text(&again)
    );
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    wait_requests(&gw, 4).await;
    let forced = cli(&gw, &["backup", dest_arg, "--force"]).await;
    assert!(forced.status.success(), "{}", output_text(&forced));
    assert_eq!(count_requests_in(&dest).await, 4);

    assert!(gw.terminate().await.success());
    let wal = gw.data.0.join("ccgate.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        wal_len, 0,
        "the WAL still holds data after a clean shutdown"
    );
    // The database file alone, as someone copying it would take it.
    let copy = out_dir.0.join("copied.db");
    std::fs::copy(gw.db_path(), &copy).unwrap();
    assert_eq!(count_requests_in(&copy).await, 4);
}
