//! Scenario tables and properties over a model world: a plan applied to the world must converge
//! (the next plan is empty), never lose a message no one deleted, and be deterministic.

use super::*;
use crate::model::Flag;
use crate::model::policy::ExpungePolicy;
use proptest::prelude::*;

fn flags(s: &str) -> Flags {
    s.chars().filter_map(Flag::from_maildir_letter).collect()
}

fn two_way() -> Policy {
    Policy {
        mode: SyncMode::TwoWay,
        expunge: ExpungePolicy::Both,
    }
}

/// A model of both sides and the state: messages carry a content id so loss is observable.
#[derive(Clone, Debug)]
struct World {
    far: BTreeMap<Uid, (u32, Flags)>,
    near: BTreeMap<NearKey, (u32, Flags)>,
    rows: Vec<StateRow>,
    next_uid: u32,
    next_key: u32,
    next_row: i64,
}

impl World {
    fn far_flags(&self) -> BTreeMap<Uid, Flags> {
        self.far.iter().map(|(u, (_, f))| (*u, f.clone())).collect()
    }
    fn near_flags(&self) -> BTreeMap<NearKey, Flags> {
        self.near
            .iter()
            .map(|(k, (_, f))| (k.clone(), f.clone()))
            .collect()
    }
    fn plan(&self, policy: Policy) -> Plan {
        plan(&self.rows, &self.far_flags(), &self.near_flags(), policy)
    }

    /// Carries out a plan the way the engine does.
    fn apply(&mut self, p: &Plan) {
        for u in &p.flags {
            if let Some((uid, f)) = &u.far {
                self.far.get_mut(uid).unwrap().1 = f.clone();
            }
            if let Some((key, f)) = &u.near {
                self.near.get_mut(key).unwrap().1 = f.clone();
            }
            self.rows.iter_mut().find(|r| r.id == u.row).unwrap().flags = u.base.clone();
        }
        for (row, key) in &p.delete_near {
            self.near.remove(key);
            self.rows.retain(|r| r.id != *row);
        }
        for (row, uid) in &p.delete_far {
            self.far.remove(uid);
            self.rows.retain(|r| r.id != *row);
        }
        for (row, side) in &p.detach {
            let r = self.rows.iter_mut().find(|r| r.id == *row).unwrap();
            match side {
                Side::Near => r.far = None,
                Side::Far => r.near = None,
            }
        }
        self.rows.retain(|r| !p.forget.contains(&r.id));
        for (uid, f) in &p.downloads {
            let content = self.far[uid].0;
            let key = NearKey(format!("k{}", self.next_key));
            self.next_key += 1;
            self.near.insert(key.clone(), (content, f.clone()));
            self.rows.push(StateRow {
                id: self.next_row,
                far: Some(*uid),
                near: Some(key),
                flags: f.clone(),
            });
            self.next_row += 1;
        }
        for (key, f) in &p.uploads {
            let content = self.near[key].0;
            let uid = Uid(self.next_uid);
            self.next_uid += 1;
            self.far.insert(uid, (content, f.clone()));
            self.rows.push(StateRow {
                id: self.next_row,
                far: Some(uid),
                near: Some(key.clone()),
                flags: f.clone(),
            });
            self.next_row += 1;
        }
    }
}

#[test]
fn new_messages_flow_both_ways() {
    let far = BTreeMap::from([(Uid(1), flags("S"))]);
    let near = BTreeMap::from([(NearKey("a".into()), flags("F"))]);
    let p = plan(&[], &far, &near, two_way());
    assert_eq!(p.downloads, vec![(Uid(1), flags("S"))]);
    assert_eq!(p.uploads, vec![(NearKey("a".into()), flags("F"))]);
}

#[test]
fn flag_changes_merge_per_flag() {
    let row = StateRow {
        id: 1,
        far: Some(Uid(1)),
        near: Some(NearKey("a".into())),
        flags: flags("S"),
    };
    // Server added F, local removed S: both changes land on both sides.
    let far = BTreeMap::from([(Uid(1), flags("FS"))]);
    let near = BTreeMap::from([(NearKey("a".into()), flags(""))]);
    let p = plan(std::slice::from_ref(&row), &far, &near, two_way());
    assert_eq!(p.flags.len(), 1);
    assert_eq!(p.flags[0].far, Some((Uid(1), flags("F"))));
    assert_eq!(p.flags[0].near, Some((NearKey("a".into()), flags("F"))));
    assert_eq!(p.flags[0].base, flags("F"));
}

#[test]
fn pull_never_touches_the_server_and_keeps_local_changes() {
    let policy = Policy {
        mode: SyncMode::Pull,
        expunge: ExpungePolicy::Both,
    };
    let row = StateRow {
        id: 1,
        far: Some(Uid(1)),
        near: Some(NearKey("a".into())),
        flags: flags("S"),
    };
    let far = BTreeMap::from([(Uid(1), flags("SR"))]);
    let near = BTreeMap::from([
        (NearKey("a".into()), flags("SF")),
        (NearKey("b".into()), flags("")),
    ]);
    let p = plan(std::slice::from_ref(&row), &far, &near, policy);
    assert!(p.uploads.is_empty());
    assert_eq!(p.flags[0].far, None);
    assert_eq!(p.flags[0].near, Some((NearKey("a".into()), flags("FRS"))));
    // Local deletion is not carried to the server in pull mode.
    let p = plan(&[row], &far, &BTreeMap::new(), policy);
    assert!(p.delete_far.is_empty());
    assert_eq!(p.detach, vec![(1, Side::Far)]);
}

#[test]
fn deletions_follow_the_expunge_policy() {
    let row = StateRow {
        id: 7,
        far: Some(Uid(3)),
        near: Some(NearKey("a".into())),
        flags: flags(""),
    };
    let near = BTreeMap::from([(NearKey("a".into()), flags(""))]);
    let p = plan(
        std::slice::from_ref(&row),
        &BTreeMap::new(),
        &near,
        two_way(),
    );
    assert_eq!(p.delete_near, vec![(7, NearKey("a".into()))]);
    let keep_local = Policy {
        mode: SyncMode::TwoWay,
        expunge: ExpungePolicy::Far,
    };
    let p = plan(
        std::slice::from_ref(&row),
        &BTreeMap::new(),
        &near,
        keep_local,
    );
    assert!(p.delete_near.is_empty());
    assert_eq!(p.detach, vec![(7, Side::Near)]);
    // A detached survivor is not uploaded again.
    let detached = StateRow { far: None, ..row };
    assert!(plan(&[detached], &BTreeMap::new(), &near, keep_local).is_empty());
}

#[test]
fn the_guard_stops_mass_deletion_but_not_small_cleanups() {
    let rows: Vec<StateRow> = (0..10)
        .map(|i| StateRow {
            id: i,
            far: Some(Uid(i as u32 + 1)),
            near: Some(NearKey(format!("k{i}"))),
            flags: Flags::new(),
        })
        .collect();
    let near: BTreeMap<NearKey, Flags> = (0..10)
        .map(|i| (NearKey(format!("k{i}")), Flags::new()))
        .collect();
    // Server shows nothing: 10 of 10 would be deleted locally.
    let p = plan(&rows, &BTreeMap::new(), &near, two_way());
    let e = check_deletion_guard(&p, &rows, 50).unwrap_err();
    assert_eq!((e.side, e.count, e.total), (Side::Near, 10, 10));
    // Two deletions out of ten pass.
    let far: BTreeMap<Uid, Flags> = (3..=10).map(|u| (Uid(u), Flags::new())).collect();
    let p = plan(&rows, &far, &near, two_way());
    assert_eq!(p.delete_near.len(), 2);
    assert!(check_deletion_guard(&p, &rows, 50).is_ok());
}

#[test]
fn copies_above_max_size_are_split_off_and_unknown_sizes_kept() {
    let copies = vec![
        (Uid(1), flags("S")),
        (Uid(2), flags("")),
        (Uid(3), flags("F")),
        (Uid(4), flags("")),
    ];
    let sizes: BTreeMap<Uid, u64> = [(Uid(1), 100), (Uid(2), 5_000), (Uid(3), 1_000)].into();
    let (keep, large) = split_by_size(&copies, |u| sizes.get(u).copied(), Some(1_000));
    assert_eq!(
        keep,
        vec![
            (Uid(1), flags("S")),
            (Uid(3), flags("F")),
            (Uid(4), flags(""))
        ]
    );
    assert_eq!(large, vec![(Uid(2), 5_000)]);
    let (all, none) = split_by_size(&copies, |_| Some(u64::MAX), None);
    assert_eq!(all, copies);
    assert!(none.is_empty());
}

fn arb_flags() -> impl Strategy<Value = Flags> {
    proptest::collection::btree_set(
        prop_oneof![
            Just(Flag::Seen),
            Just(Flag::Flagged),
            Just(Flag::Answered),
            Just(Flag::Deleted)
        ],
        0..4,
    )
    .prop_map(|set| set.into_iter().collect::<Flags>())
}

prop_compose! {
    /// A synced world (every row linked, both sides equal), then random changes on each side.
    fn arb_world()(
        linked in proptest::collection::vec((arb_flags(), 0u8..6, arb_flags(), arb_flags()), 0..12),
        new_far in proptest::collection::vec(arb_flags(), 0..4),
        new_near in proptest::collection::vec(arb_flags(), 0..4),
    ) -> World {
        let mut w = World { far: BTreeMap::new(), near: BTreeMap::new(), rows: vec![], next_uid: 1, next_key: 0, next_row: 1 };
        let mut content = 0u32;
        for (base, fate, fnew, nnew) in linked {
            let uid = Uid(w.next_uid); w.next_uid += 1;
            let key = NearKey(format!("k{}", w.next_key)); w.next_key += 1;
            content += 1;
            // fate: 0 = deleted on server, 1 = deleted locally, 2 = both, else both present.
            if fate != 0 && fate != 2 { w.far.insert(uid, (content, fnew)); }
            if fate != 1 && fate != 2 { w.near.insert(key.clone(), (content, nnew)); }
            w.rows.push(StateRow { id: w.next_row, far: Some(uid), near: Some(key), flags: base });
            w.next_row += 1;
        }
        for f in new_far { content += 1; w.far.insert(Uid(w.next_uid), (content, f)); w.next_uid += 1; }
        for f in new_near { content += 1; w.near.insert(NearKey(format!("k{}", w.next_key)), (content, f)); w.next_key += 1; }
        w
    }
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![
            Just(SyncMode::TwoWay),
            Just(SyncMode::Pull),
            Just(SyncMode::Push)
        ],
        prop_oneof![
            Just(ExpungePolicy::Both),
            Just(ExpungePolicy::Near),
            Just(ExpungePolicy::Far),
            Just(ExpungePolicy::None)
        ],
    )
        .prop_map(|(mode, expunge)| Policy { mode, expunge })
}

proptest! {
    #[test]
    fn a_second_run_plans_nothing(w in arb_world(), policy in arb_policy()) {
        let mut w = w;
        let p = w.plan(policy);
        w.apply(&p);
        let again = w.plan(policy);
        prop_assert!(again.is_empty(), "second plan not empty: {:?}", again);
    }

    #[test]
    fn planning_is_deterministic(w in arb_world(), policy in arb_policy()) {
        prop_assert_eq!(w.plan(policy), w.plan(policy));
    }

    #[test]
    fn two_way_converges_to_equal_sides(w in arb_world()) {
        let mut w = w;
        let p = w.plan(two_way());
        w.apply(&p);
        let mut far: Vec<(u32, Flags)> = w.far.values().cloned().collect();
        let mut near: Vec<(u32, Flags)> = w.near.values().cloned().collect();
        far.sort();
        near.sort();
        prop_assert_eq!(far, near);
    }

    #[test]
    fn nothing_is_lost_that_no_side_deleted(w in arb_world(), policy in arb_policy()) {
        let mut w = w;
        // Contents whose row lost a side were deleted by the user; everything else must survive.
        let deleted: BTreeSet<u32> = w.rows.iter().filter_map(|r| {
            let f = r.far.and_then(|u| w.far.get(&u)).map(|m| m.0);
            let n = r.near.as_ref().and_then(|k| w.near.get(k)).map(|m| m.0);
            match (f, n) { (Some(_), Some(_)) => None, (a, b) => a.or(b) }
        }).collect();
        let before: BTreeSet<u32> = w.far.values().chain(w.near.values()).map(|m| m.0).collect();
        let p = w.plan(policy);
        w.apply(&p);
        let after: BTreeSet<u32> = w.far.values().chain(w.near.values()).map(|m| m.0).collect();
        for c in before.difference(&deleted) {
            prop_assert!(after.contains(c), "content {} lost", c);
        }
        if policy.expunge == ExpungePolicy::None {
            prop_assert_eq!(before, after);
        }
    }
}

#[test]
fn uploads_refused_before_are_held_back_until_the_file_changes() {
    let key = |s: &str| NearKey(s.into());
    let uploads = vec![
        (key("same"), Flags::new()),
        (key("changed"), Flags::new()),
        (key("new"), Flags::new()),
    ];
    let refused: BTreeMap<String, (u64, String)> = [
        ("same".to_string(), (100, "NO too big".to_string())),
        ("changed".to_string(), (100, "NO too big".to_string())),
    ]
    .into();
    let sizes: BTreeMap<&str, u64> = [("same", 100), ("changed", 90), ("new", 5)].into();
    let (keep, cleared) = split_refused(uploads, &refused, |k| sizes.get(k.0.as_str()).copied());
    let kept: Vec<&str> = keep.iter().map(|(k, _)| k.0.as_str()).collect();
    assert_eq!(kept, vec!["changed", "new"]);
    assert_eq!(cleared, vec!["changed".to_string()]);
}
