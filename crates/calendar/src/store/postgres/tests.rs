//! Several nodes on one PostgreSQL database.

use super::*;
use crate::store::IndexedInstance;
use serval_core::store::pg_testing::TestPostgres;

fn object(uid: &str, etag: &str) -> NewObject {
    NewObject {
        uid: uid.into(),
        kind: ComponentKind::Event,
        etag: etag.into(),
        data: format!("data {uid} {etag}"),
        instances: vec![IndexedInstance {
            start: 0,
            end: 3600,
            busy: BusyStatus::Busy,
        }],
        indexed_until: None,
    }
}

/// Two nodes (each its own pool) writing one calendar at once: every write gets its own
/// revision, the change log lists each object once, and If-Match lets one of two
/// racing updates through.
#[test]
fn two_nodes_writing_one_calendar_lose_nothing() {
    let server = TestPostgres::start();
    let nodes: Vec<PgCalendarStore> = (0..2)
        .map(|_| PgCalendarStore::open(server.store()).unwrap())
        .collect();
    let cal = nodes[0]
        .create_collection("ann", "shared", &[ComponentKind::Event], &[], 0)
        .unwrap()
        .unwrap();
    let start = nodes[1]
        .collection("ann", "shared")
        .unwrap()
        .unwrap()
        .revision;
    const EACH: usize = 25;
    std::thread::scope(|scope| {
        for (n, node) in nodes.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..EACH {
                    let uid = format!("n{n}-{i}");
                    let outcome = node
                        .put_object(
                            cal.id,
                            &format!("{uid}.ics"),
                            &object(&uid, "\"1\""),
                            &PutCondition::default(),
                            1,
                        )
                        .unwrap();
                    assert!(matches!(outcome, PutOutcome::Created { .. }));
                }
            });
        }
    });
    let (changes, current) = nodes[1].changes_since(cal.id, start).unwrap().unwrap();
    assert_eq!(current, start + 2 * EACH as i64, "one revision per write");
    assert_eq!(changes.len(), 2 * EACH);
    let revisions: Vec<i64> = changes.iter().map(|c| c.revision).collect();
    assert!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "in revision order"
    );

    // Both nodes saw etag "1" and race to update it.
    let if_match = PutCondition {
        if_match: Some("\"1\"".into()),
        ..PutCondition::default()
    };
    let outcomes: Vec<PutOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| {
                let if_match = if_match.clone();
                scope.spawn(move || {
                    node.put_object(
                        cal.id,
                        "n0-0.ics",
                        &object("n0-0", &format!("\"2-{n}\"")),
                        &if_match,
                        2,
                    )
                    .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let updated = outcomes
        .iter()
        .filter(|o| matches!(o, PutOutcome::Updated { .. }))
        .count();
    let refused = outcomes
        .iter()
        .filter(|o| **o == PutOutcome::PreconditionFailed)
        .count();
    assert_eq!((updated, refused), (1, 1), "{outcomes:?}");
}
