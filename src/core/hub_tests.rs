//! The hub on its own: the store ports in memory, a recording sink for
//! the Lync gateway, and no sockets.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use super::*;
use crate::core::fixtures::{MemoryStore, category, open_room, user};
use crate::core::ports::{ArchiveStore, DirectoryStore, InvitationStore, ModelStore};

const DOMAIN: &str = "example.test";
const ALICE: &str = "alice@example.test";
const BOB: &str = "bob@example.test";
const CAROL: &str = "carol@example.test";

/// An event as the tests compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Posted {
        room: String,
        id: i64,
        author: String,
        text: String,
    },
    Joined {
        room: String,
        user: String,
    },
    Left {
        room: String,
        user: String,
    },
    Evicted {
        room: String,
        user: String,
    },
    Invited {
        room: String,
        user: String,
    },
}

/// The Lync gateway's sink: every event with its recipients, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Seen, Vec<SessionRef>)>>);

impl EventSink for Recorder {
    fn deliver(&self, event: &Event, to: &[SessionRef]) {
        let seen = match event {
            Event::Posted { room, message } => Seen::Posted {
                room: room.name.clone(),
                id: message.id,
                author: message.author.clone(),
                text: message.text.clone(),
            },
            Event::Joined { room, user, .. } => Seen::Joined {
                room: room.name.clone(),
                user: user.to_string(),
            },
            Event::Left { room, user } => Seen::Left {
                room: room.name.clone(),
                user: user.to_string(),
            },
            Event::Evicted { room, user, .. } => Seen::Evicted {
                room: room.name.clone(),
                user: user.to_string(),
            },
            Event::Invited { room, user, .. } => Seen::Invited {
                room: room.name.clone(),
                user: user.to_string(),
            },
        };
        let mut to = to.to_vec();
        to.sort();
        self.0.lock().unwrap().push((seen, to));
    }
}

/// A hub over a seeded store: alice, bob and carol; category General (history kept) with
/// the open rooms Lobby and Annex, category Ephemeral (no history) with the open room Flash.
struct Hub {
    store: Arc<MemoryStore>,
    model: Arc<SnapshotHandle>,
    core: Arc<ChatCore>,
    events: Arc<Recorder>,
}

fn session(n: u64) -> SessionRef {
    SessionRef {
        gateway: Gateway::Lync,
        connection: n,
        stream: Arc::from(format!("call-{n}")),
    }
}

fn sessions(list: &[&SessionRef]) -> Vec<SessionRef> {
    let mut list: Vec<SessionRef> = list.iter().map(|s| (*s).clone()).collect();
    list.sort();
    list
}

impl Hub {
    async fn new() -> Hub {
        let store = Arc::new(MemoryStore::default());
        for aor in [ALICE, BOB, CAROL] {
            committed(store.add_user(user(aor))).await.unwrap();
        }
        let general = committed(store.save_category(category("General", DOMAIN, true)))
            .await
            .unwrap();
        let ephemeral = committed(store.save_category(category("Ephemeral", DOMAIN, false)))
            .await
            .unwrap();
        for (name, category) in [
            ("Lobby", general.id),
            ("Annex", general.id),
            ("Flash", ephemeral.id),
        ] {
            committed(store.save_room(open_room(name, category)))
                .await
                .unwrap();
        }
        let model = Arc::new(SnapshotHandle::load(store.as_ref()).unwrap());
        let core = Arc::new(ChatCore::new(model.clone(), store.clone()).unwrap());
        let events = Arc::new(Recorder::default());
        core.attach(Gateway::Lync, events.clone());
        Hub {
            store,
            model,
            core,
            events,
        }
    }

    fn room(&self, name: &str) -> Arc<Room> {
        self.core
            .snapshot()
            .room_by_name(name)
            .map(|room| Arc::new(room.clone()))
            .unwrap()
    }

    fn uid(&self, name: &str) -> String {
        self.room(name).uid.clone()
    }

    /// Stores a server setting and reloads the snapshot, as the server does after a change.
    async fn setting(&self, name: &str, value: u32) {
        committed(self.store.set_setting(name, value))
            .await
            .unwrap();
        self.model.reload(self.store.as_ref()).unwrap();
    }

    fn join(&self, user: &str, session: &SessionRef, room: &str) -> Joined {
        self.core.join(user, session, &self.uid(room)).unwrap()
    }

    /// Posts and waits for the whole lifecycle.
    async fn post(&self, user: &str, session: &SessionRef, room: &str, text: &str) -> i64 {
        let accepted = match self
            .core
            .post(user, session, &self.uid(room), text.into(), None)
        {
            Ok(accepted) => accepted,
            Err(error) => panic!("post refused: {error}"),
        };
        accepted.completed().await.unwrap().id
    }

    fn refused(
        &self,
        user: &str,
        session: &SessionRef,
        room: &str,
        text: String,
        extension: Option<Extension>,
    ) -> ChatError {
        match self
            .core
            .post(user, session, &self.uid(room), text, extension)
        {
            Ok(_) => panic!("the post was accepted"),
            Err(error) => error,
        }
    }

    /// A message of bob's written to the store directly, as no post through the hub is.
    async fn written_behind_its_back(&self, room: &str, text: &str) -> ChatMessage {
        committed(self.store.append_message(ChatMessage {
            id: 0,
            room_id: self.room(room).id,
            author: BOB.into(),
            ts: now_ticks(),
            text: text.into(),
            extension: None,
        }))
        .await
        .unwrap()
    }

    async fn stored(&self, room: &str, query: HistoryQuery) -> Vec<ChatMessage> {
        self.store.history(self.room(room).id, query).await.unwrap()
    }

    async fn history(&self, user: &str, room: &str, query: HistoryQuery) -> Vec<ChatMessage> {
        let (_, messages) = self
            .core
            .history(user, &self.uid(room), query)
            .await
            .unwrap();
        messages.iter().map(|m| ChatMessage::clone(m)).collect()
    }

    /// Events published since the last call.
    fn take(&self) -> Vec<(Seen, Vec<SessionRef>)> {
        std::mem::take(&mut *self.events.0.lock().unwrap())
    }
}

fn users(joined: &Joined) -> Vec<&str> {
    joined
        .participants
        .iter()
        .map(|p| p.user.as_str())
        .collect()
}

fn ids(messages: &[ChatMessage]) -> Vec<i64> {
    messages.iter().map(|m| m.id).collect()
}

fn texts(messages: &[ChatMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.text.as_str()).collect()
}

fn joined(room: &str, user: &str) -> Seen {
    Seen::Joined {
        room: room.into(),
        user: user.into(),
    }
}

fn left(room: &str, user: &str) -> Seen {
    Seen::Left {
        room: room.into(),
        user: user.into(),
    }
}

/// Polls every future in the order given, again on every wake-up, like a `join_all`:
/// those that are ready finish in that order.
async fn join_in_order<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn joining_lists_the_roster_and_tells_only_the_others() {
    let hub = Hub::new().await;
    let (a, b, a2) = (session(1), session(2), session(3));

    let first = hub.join(ALICE, &a, "Lobby");
    assert_eq!(first.room.name, "Lobby");
    assert_eq!(users(&first), [ALICE]);
    assert!(hub.take().is_empty(), "nobody else is there to hear of it");

    let second = hub.join(BOB, &b, "Lobby");
    assert_eq!(users(&second), [ALICE, BOB]);
    assert_eq!(hub.take(), [(joined("Lobby", BOB), sessions(&[&a]))]);

    // Joining again on the same session changes nothing and tells nobody.
    assert_eq!(users(&hub.join(BOB, &b, "Lobby")), [ALICE, BOB]);
    assert!(hub.take().is_empty());

    // alice's second session: still two participants, and nobody is told again (one
    // notice per user, so many sessions of one user cannot flood the room's readers).
    assert_eq!(users(&hub.join(ALICE, &a2, "Lobby")), [ALICE, BOB]);
    assert!(hub.take().is_empty());
    let mut present = hub.core.recipients(hub.room("Lobby").id);
    present.sort();
    assert_eq!(present, sessions(&[&a, &b, &a2]));

    let missing = hub
        .core
        .join(CAROL, &session(4), "00000000-0000-4000-8000-000000000000")
        .err()
        .unwrap();
    assert!(
        matches!(missing, ChatError::Denied(Denial::NotFound)),
        "{missing:?}"
    );
    assert!(hub.take().is_empty());
}

#[tokio::test]
async fn above_participant_update_limit_nobody_hears_of_joins_or_leaves() {
    let hub = Hub::new().await;
    hub.setting("ParticipantUpdateLimit", 2).await;
    let (a, b, c) = (session(1), session(2), session(3));
    hub.join(ALICE, &a, "Lobby");
    assert_eq!(users(&hub.join(BOB, &b, "Lobby")), [ALICE, BOB]);
    assert_eq!(hub.take(), [(joined("Lobby", BOB), sessions(&[&a]))]);

    // The third participant is above the limit: a roster of one, and no notices.
    let third = hub.join(CAROL, &c, "Lobby");
    assert_eq!(users(&third), [CAROL]);
    assert!(hub.take().is_empty());

    // Leaving from above the limit is not announced either; from below it is.
    hub.core.part(CAROL, &c, &hub.uid("Lobby")).unwrap();
    assert!(hub.take().is_empty());
    hub.core.part(BOB, &b, &hub.uid("Lobby")).unwrap();
    assert_eq!(hub.take(), [(left("Lobby", BOB), sessions(&[&a]))]);
}

#[tokio::test]
async fn parting_tells_those_remaining() {
    let hub = Hub::new().await;
    let (a, b, c) = (session(1), session(2), session(3));
    hub.join(ALICE, &a, "Lobby");
    hub.join(BOB, &b, "Lobby");
    hub.join(CAROL, &c, "Lobby");
    hub.take();

    let room = hub.core.part(BOB, &b, &hub.uid("Lobby")).unwrap();
    assert_eq!(room.name, "Lobby");
    assert_eq!(hub.take(), [(left("Lobby", BOB), sessions(&[&a, &c]))]);

    // Leaving again is answered the same and announces nothing.
    hub.core.part(BOB, &b, &hub.uid("Lobby")).unwrap();
    assert!(hub.take().is_empty());
    let missing = hub
        .core
        .part(BOB, &b, "00000000-0000-4000-8000-000000000000")
        .err()
        .unwrap();
    assert!(
        matches!(missing, ChatError::Denied(Denial::NotFound)),
        "{missing:?}"
    );

    // carol on a second session: leaving on one of the two tells nobody, she is still
    // there; the last one tells the others.
    let c2 = session(5);
    hub.join(CAROL, &c2, "Lobby");
    assert!(hub.take().is_empty());
    hub.core.part(CAROL, &c2, &hub.uid("Lobby")).unwrap();
    assert!(
        hub.take().is_empty(),
        "carol is still present on another session"
    );

    // A session that ends leaves every room it was in.
    hub.join(CAROL, &c, "Annex");
    hub.core.leave_all(CAROL, &c);
    assert_eq!(hub.take(), [(left("Lobby", CAROL), sessions(&[&a]))]);
    assert!(hub.core.recipients(hub.room("Annex").id).is_empty());
    assert_eq!(hub.core.recipients(hub.room("Lobby").id), [a]);
}

#[tokio::test]
async fn posting_needs_a_join_and_respects_the_size_limits() {
    let hub = Hub::new().await;
    let a = session(1);
    let before_join = hub.refused(ALICE, &a, "Lobby", "hello".into(), None);
    assert!(
        matches!(before_join, ChatError::Invalid(_)),
        "{before_join:?}"
    );

    hub.join(ALICE, &a, "Lobby");
    let long = hub.refused(ALICE, &a, "Lobby", "x".repeat(8_001), None);
    assert!(
        matches!(
            long,
            ChatError::TooLarge {
                size: 8_001,
                limit: 8_000
            }
        ),
        "{long:?}"
    );
    // The text fits, the story (text and extension parts) does not.
    let story = Extension {
        gateway: Gateway::Lync,
        markup: "y".repeat(64_000),
    };
    let long_story = hub.refused(ALICE, &a, "Lobby", "hi".into(), Some(story));
    assert!(
        matches!(
            long_story,
            ChatError::TooLarge {
                size: 64_002,
                limit: 64_000
            }
        ),
        "{long_story:?}"
    );
    // A smaller MessageSizeLimit applies from the next snapshot on.
    hub.setting("MessageSizeLimit", 4).await;
    let over = hub.refused(ALICE, &a, "Lobby", "hello".into(), None);
    assert!(
        matches!(over, ChatError::TooLarge { size: 5, limit: 4 }),
        "{over:?}"
    );

    assert!(hub.stored("Lobby", HistoryQuery::Last(10)).await.is_empty());
    assert!(hub.take().is_empty());
}

#[tokio::test]
async fn an_accepted_post_is_stored_then_delivered_to_everyone_in_the_room() {
    let hub = Hub::new().await;
    let (a, b, c) = (session(1), session(2), session(3));
    hub.join(ALICE, &a, "Lobby");
    hub.join(BOB, &b, "Lobby");
    hub.join(CAROL, &c, "Annex");
    hub.take();

    let accepted = match hub
        .core
        .post(ALICE, &a, &hub.uid("Lobby"), "hello".into(), None)
    {
        Ok(accepted) => accepted,
        Err(error) => panic!("{error}"),
    };
    // Nothing is delivered before the commit was awaited.
    assert!(hub.take().is_empty());
    let message = accepted.completed().await.unwrap();
    assert!(message.id > 0);
    assert_eq!(message.author, ALICE);
    assert_eq!(message.text, "hello");
    assert_eq!(message.room_id, hub.room("Lobby").id);
    let posted = Seen::Posted {
        room: "Lobby".into(),
        id: message.id,
        author: ALICE.into(),
        text: "hello".into(),
    };
    assert_eq!(hub.take(), [(posted, sessions(&[&a, &b]))]);
    assert_eq!(
        hub.stored("Lobby", HistoryQuery::Last(10)).await,
        [ChatMessage::clone(&message)]
    );
}

#[tokio::test]
async fn a_category_without_history_delivers_but_never_stores() {
    let hub = Hub::new().await;
    let (a, b) = (session(1), session(2));
    hub.join(ALICE, &a, "Flash");
    hub.join(BOB, &b, "Flash");
    hub.take();

    let id = hub.post(BOB, &b, "Flash", "gone soon").await;
    assert_eq!(id, 0);
    let posted = Seen::Posted {
        room: "Flash".into(),
        id: 0,
        author: BOB.into(),
        text: "gone soon".into(),
    };
    assert_eq!(hub.take(), [(posted, sessions(&[&a, &b]))]);
    assert!(hub.stored("Flash", HistoryQuery::Last(10)).await.is_empty());
    assert!(
        hub.history(ALICE, "Flash", HistoryQuery::Last(10))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn last_comes_from_the_cache_and_other_queries_from_the_store() {
    let hub = Hub::new().await;
    let a = session(1);
    hub.join(ALICE, &a, "Lobby");
    let mut posted = Vec::new();
    for text in [
        "one apple",
        "two pears",
        "three apples",
        "four plums",
        "five",
    ] {
        posted.push(hub.post(ALICE, &a, "Lobby", text).await);
    }
    // Cold (loads the cache), then warm: both equal the store's own answer.
    for _ in 0..2 {
        let last = hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await;
        assert_eq!(last, hub.stored("Lobby", HistoryQuery::Last(3)).await);
        assert_eq!(ids(&last), posted[2..]);
    }
    // A post through the hub is remembered.
    posted.push(hub.post(ALICE, &a, "Lobby", "six").await);
    let last = hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await;
    assert_eq!(last, hub.stored("Lobby", HistoryQuery::Last(3)).await);
    assert_eq!(texts(&last), ["four plums", "five", "six"]);

    // A message written to the store behind the hub's back shows who answers what: Last
    // within DefaultChatHistory is the cache's; every other query is the store's (Before
    // too, once it reaches past the cache: `before_comes_from_the_cache_while_it_holds_it`).
    let behind = hub.written_behind_its_back("Lobby", "seven apples").await;
    let cached = hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await;
    assert_eq!(texts(&cached), ["four plums", "five", "six"]);
    let deep = hub.history(BOB, "Lobby", HistoryQuery::Last(31)).await;
    assert_eq!(deep, hub.stored("Lobby", HistoryQuery::Last(31)).await);
    assert_eq!(deep.last().map(|m| m.id), Some(behind.id));

    let before = HistoryQuery::Before {
        id: behind.id,
        count: 2,
    };
    let older = hub.history(BOB, "Lobby", before.clone()).await;
    assert_eq!(older, hub.stored("Lobby", before).await);
    assert_eq!(texts(&older), ["five", "six"]);

    let after = HistoryQuery::After {
        id: posted[3],
        count: 10,
    };
    let newer = hub.history(BOB, "Lobby", after.clone()).await;
    assert_eq!(newer, hub.stored("Lobby", after).await);
    assert_eq!(texts(&newer), ["five", "six", "seven apples"]);

    let search = HistoryQuery::Search {
        words: vec!["apples".into()],
        count: 10,
    };
    let found = hub.history(BOB, "Lobby", search.clone()).await;
    assert_eq!(found, hub.stored("Lobby", search).await);
    assert_eq!(texts(&found), ["three apples", "seven apples"]);
}

/// `Before` (what a join reads) is answered from the cache while the cache holds every
/// message asked for, and by the store once it reaches past the cache's oldest.
#[tokio::test]
async fn before_comes_from_the_cache_while_it_holds_it() {
    let hub = Hub::new().await;
    hub.setting("DefaultChatHistory", 3).await;
    let a = session(1);
    hub.join(ALICE, &a, "Lobby");
    let mut posted = Vec::new();
    for n in 0..5 {
        posted.push(hub.post(ALICE, &a, "Lobby", &format!("post {n}")).await);
    }
    // Loads the cache: the last three.
    assert_eq!(
        hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await.len(),
        3
    );
    // Only the store knows of a message written behind the hub's back.
    let behind = hub.written_behind_its_back("Lobby", "behind").await;
    let before = |id: i64, count: u32| HistoryQuery::Before { id, count };
    let cached = hub.history(BOB, "Lobby", before(behind.id + 1, 2)).await;
    assert_eq!(
        ids(&cached),
        posted[3..],
        "the cache's, without the store's newest"
    );
    let within = hub.history(BOB, "Lobby", before(posted[4], 2)).await;
    assert_eq!(ids(&within), posted[2..4]);
    // Three before the last post reach past the cache's oldest: the store's answer.
    let past = hub.history(BOB, "Lobby", before(posted[4], 3)).await;
    assert_eq!(past, hub.stored("Lobby", before(posted[4], 3)).await);
    assert_eq!(ids(&past), posted[1..4]);
    // A room with fewer messages than the cache holds is all in it.
    let annex = session(2);
    hub.join(ALICE, &annex, "Annex");
    let only = hub.post(ALICE, &annex, "Annex", "only").await;
    assert_eq!(
        hub.history(BOB, "Annex", HistoryQuery::Last(3)).await.len(),
        1
    );
    let few = hub.history(BOB, "Annex", before(only + 1, 3)).await;
    assert_eq!(ids(&few), [only]);
}

/// Commits are awaited in an order that is neither the ids' nor its reverse: the cache
/// must still hold the last DefaultChatHistory messages in id order (`remember` inserting
/// by id, not pushing at either end).
#[tokio::test]
async fn cache_stays_in_id_order_when_commits_are_awaited_out_of_order() {
    const POSTS: usize = 24;
    let hub = Hub::new().await;
    hub.setting("DefaultChatHistory", 10).await;
    let people = [(ALICE, session(1)), (BOB, session(2)), (CAROL, session(3))];
    for (user, session) in &people {
        hub.join(user, session, "Lobby");
    }
    for n in 0..3 {
        hub.post(ALICE, &people[0].1, "Lobby", &format!("early {n}"))
            .await;
    }
    // Loads the cache, so the posts below go through `remember`.
    assert_eq!(
        hub.history(ALICE, "Lobby", HistoryQuery::Last(10))
            .await
            .len(),
        3
    );
    hub.take();

    let uid = hub.uid("Lobby");
    let mut accepted = Vec::new();
    for n in 0..POSTS {
        let (user, session) = &people[n % people.len()];
        match hub
            .core
            .post(user, session, &uid, format!("post {n}"), None)
        {
            Ok(post) => accepted.push(Some(post)),
            Err(error) => panic!("{error}"),
        }
    }
    // The store commits each post as it is submitted: every answer is waiting before the
    // first completion is awaited.
    // A shuffle (7 is coprime with 24): 3, 10, 17, 0, 7, 14, 21, 4, …
    let order: Vec<usize> = (0..POSTS).map(|i| (i * 7 + 3) % POSTS).collect();
    let completions: Vec<_> = order
        .iter()
        .map(|&i| accepted[i].take().unwrap().completed())
        .collect();
    let messages: Vec<Arc<ChatMessage>> = join_in_order(completions)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let completed_ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
    let mut sorted = completed_ids.clone();
    sorted.sort_unstable();
    assert_ne!(
        completed_ids, sorted,
        "the commits must be awaited out of order"
    );

    let cached = hub.history(BOB, "Lobby", HistoryQuery::Last(10)).await;
    assert!(
        cached.windows(2).all(|pair| pair[0].id < pair[1].id),
        "cache out of order: {:?}",
        ids(&cached)
    );
    assert_eq!(cached, hub.stored("Lobby", HistoryQuery::Last(10)).await);
    assert_eq!(ids(&cached), sorted[POSTS - 10..]);
    // Fewer than the cache holds: its newest.
    let few = hub.history(CAROL, "Lobby", HistoryQuery::Last(4)).await;
    assert_eq!(few, hub.stored("Lobby", HistoryQuery::Last(4)).await);

    // Every post reached all three sessions.
    let events = hub.take();
    assert_eq!(events.len(), POSTS);
    let everyone = sessions(&[&people[0].1, &people[1].1, &people[2].1]);
    assert!(events.iter().all(|(_, to)| *to == everyone));
}

#[tokio::test]
async fn posts_are_published_in_id_order_whichever_completes_first() {
    let hub = Hub::new().await;
    let (a, b) = (session(1), session(2));
    hub.join(ALICE, &a, "Lobby");
    hub.join(BOB, &b, "Lobby");
    hub.take();
    let uid = hub.uid("Lobby");
    let mut accepted: Vec<AcceptedPost> = ["one", "two", "three"]
        .into_iter()
        .map(|text| {
            hub.core
                .post(ALICE, &a, &uid, text.into(), None)
                .ok()
                .unwrap()
        })
        .collect();
    // The last post's waiter wakes first: it publishes the two before it, then itself.
    let third = accepted.pop().unwrap().completed().await.unwrap();
    let published: Vec<String> = hub
        .take()
        .into_iter()
        .map(|(seen, _)| match seen {
            Seen::Posted { text, .. } => text,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(published, ["one", "two", "three"]);
    // The earlier waiters still get their own messages, and nothing is published twice.
    for post in accepted {
        assert!(post.completed().await.unwrap().id < third.id);
    }
    assert!(hub.take().is_empty());
}

#[tokio::test]
async fn an_abandoned_post_is_still_cached_and_published() {
    let hub = Hub::new().await;
    let (a, b) = (session(1), session(2));
    hub.join(ALICE, &a, "Lobby");
    hub.join(BOB, &b, "Lobby");
    hub.post(ALICE, &a, "Lobby", "before").await;
    // Loads the cache.
    assert_eq!(
        hub.history(BOB, "Lobby", HistoryQuery::Last(10))
            .await
            .len(),
        1
    );
    hub.take();
    // The client went away before its post was acknowledged: the post is stored, so the
    // room must see it all the same.
    let abandoned = hub
        .core
        .post(ALICE, &a, &hub.uid("Lobby"), "abandoned".into(), None)
        .ok()
        .unwrap();
    drop(abandoned);
    let mut events = Vec::new();
    for _ in 0..100 {
        events.extend(hub.take());
        if !events.is_empty() {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(&events[0].0, Seen::Posted { text, .. } if text == "abandoned"));
    assert_eq!(events[0].1, sessions(&[&a, &b]));
    let cached = hub.history(BOB, "Lobby", HistoryQuery::Last(10)).await;
    assert_eq!(texts(&cached), ["before", "abandoned"]);
    assert_eq!(cached, hub.stored("Lobby", HistoryQuery::Last(10)).await);
}

#[tokio::test]
async fn reconcile_after_disabling_a_room_evicts_its_occupants() {
    let hub = Hub::new().await;
    let (a, b) = (session(1), session(2));
    hub.join(ALICE, &a, "Lobby");
    hub.join(BOB, &b, "Lobby");
    hub.join(ALICE, &a, "Annex");
    hub.take();
    assert_eq!(hub.core.reconcile(), 0, "nothing changed yet");
    assert!(hub.take().is_empty());

    let mut lobby = Room::clone(&hub.room("Lobby"));
    lobby.disabled = true;
    committed(hub.store.save_room(lobby)).await.unwrap();
    hub.model.reload(hub.store.as_ref()).unwrap();
    assert_eq!(hub.core.reconcile(), 2);

    let events = hub.take();
    assert_eq!(events.len(), 2, "{events:?}");
    let mut evicted = Vec::new();
    for (seen, to) in &events {
        let Seen::Evicted { room, user } = seen else {
            panic!("expected an eviction, got {seen:?}");
        };
        assert_eq!(room, "Lobby");
        let own = if user == ALICE { &a } else { &b };
        assert!(
            to.contains(own),
            "{user} must hear of its own eviction: {to:?}"
        );
        evicted.push(user.clone());
    }
    evicted.sort();
    assert_eq!(evicted, [ALICE, BOB]);

    assert!(hub.core.recipients(hub.room("Lobby").id).is_empty());
    assert_eq!(
        hub.core.recipients(hub.room("Annex").id),
        std::slice::from_ref(&a)
    );
    let join = hub.core.join(BOB, &b, &hub.uid("Lobby")).err().unwrap();
    assert!(
        matches!(join, ChatError::Denied(Denial::Disabled)),
        "{join:?}"
    );
    let post = hub.refused(ALICE, &a, "Lobby", "anyone?".into(), None);
    assert!(
        matches!(post, ChatError::Denied(Denial::Disabled)),
        "{post:?}"
    );
    assert_eq!(hub.core.reconcile(), 0);
    assert!(hub.take().is_empty());
}

/// A reader whose cold load is dropped half-way (its connection closed while the store was
/// reading) must not leave the room marked as loading: the next reader loads and caches it,
/// and committed posts are not collected for a load that will never finish.
#[tokio::test]
async fn a_dropped_cold_load_leaves_the_room_loadable() {
    let hub = Hub::new().await;
    let a = session(1);
    hub.join(ALICE, &a, "Lobby");
    let first = hub.post(ALICE, &a, "Lobby", "one").await;
    // Polled once (the load starts and marks the room), then dropped.
    let uid = hub.uid("Lobby");
    let mut cold = Box::pin(hub.core.history(BOB, &uid, HistoryQuery::Last(3)));
    let pending = std::future::poll_fn(|cx| Poll::Ready(cold.as_mut().poll(cx).is_pending())).await;
    assert!(pending, "the load finished at its first poll");
    drop(cold);
    // The next reader loads and caches: a message written behind the hub's back after
    // that is not in the cached answer.
    let loaded = hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await;
    assert_eq!(ids(&loaded), [first]);
    committed(hub.store.append_message(ChatMessage {
        id: 0,
        room_id: hub.room("Lobby").id,
        author: BOB.into(),
        ts: now_ticks(),
        text: "behind".into(),
        extension: None,
    }))
    .await
    .unwrap();
    let cached = hub.history(BOB, "Lobby", HistoryQuery::Last(3)).await;
    assert_eq!(ids(&cached), [first], "the room was never cached again");
}

/// An invitation is offered only while the user may still join the room: removed from a
/// closed room's members, or the room disabled, it is no longer returned.
#[tokio::test]
async fn invitations_to_rooms_the_user_may_no_longer_join_are_not_offered() {
    let hub = Hub::new().await;
    let mut annex = Room::clone(&hub.room("Annex"));
    annex.privacy = crate::core::model::Privacy::Closed;
    annex.members = vec![crate::core::model::Principal::User(BOB.into())];
    committed(hub.store.save_room(annex.clone())).await.unwrap();
    let lobby = hub.room("Lobby");
    committed(
        hub.store
            .add_invitations(vec![(BOB.into(), annex.id), (BOB.into(), lobby.id)], 0),
    )
    .await
    .unwrap();
    hub.model.reload(hub.store.as_ref()).unwrap();
    let rooms = |list: Vec<(i64, Arc<Room>)>| -> Vec<String> {
        list.into_iter()
            .map(|(_, room)| room.name.clone())
            .collect()
    };
    assert_eq!(
        rooms(hub.core.invitations(BOB, 0).await.unwrap()),
        ["Annex", "Lobby"]
    );

    annex.members.clear();
    committed(hub.store.save_room(annex)).await.unwrap();
    let mut lobby = Room::clone(&lobby);
    lobby.disabled = true;
    committed(hub.store.save_room(lobby)).await.unwrap();
    hub.model.reload(hub.store.as_ref()).unwrap();
    assert!(hub.core.invitations(BOB, 0).await.unwrap().is_empty());
}

/// Preferences belong to persistent chat: a user it is turned off for stores none.
#[tokio::test]
async fn preferences_need_persistent_chat() {
    let hub = Hub::new().await;
    assert!(hub.core.set_preference(BOB, "l", "c").await.is_ok());
    committed(hub.store.set_policy(
        crate::core::model::PolicyScope::User(CAROL.into()),
        Some(false),
    ))
    .await
    .unwrap();
    hub.model.reload(hub.store.as_ref()).unwrap();
    let refused = hub.core.set_preference(CAROL, "l", "c").await;
    assert!(
        matches!(refused, Err(ChatError::Denied(Denial::NotEnabled))),
        "{refused:?}"
    );
    assert_eq!(hub.core.preference(CAROL, "l").await.unwrap(), None);
}

/// What one user keeps in preferences is bounded in labels and in bytes; replacing a
/// preference counts it once; other users are not affected.
#[tokio::test]
async fn preferences_are_bounded_per_user() {
    let hub = Hub::new().await;
    let labels = PREFERENCE_QUOTA.labels;
    for n in 0..labels {
        hub.core
            .set_preference(BOB, &format!("label {n}"), "c")
            .await
            .unwrap();
    }
    let refused = hub.core.set_preference(BOB, "one more", "c").await;
    assert!(
        matches!(refused, Err(ChatError::QuotaExceeded(_))),
        "{refused:?}"
    );
    assert_eq!(
        hub.core.set_preference(BOB, "label 0", "d").await.unwrap(),
        2
    );
    assert!(
        hub.core
            .set_preference(CAROL, "one more", "c")
            .await
            .is_ok()
    );

    // Bytes: contents of the largest size fill the quota before the labels do.
    let big = "x".repeat(MAX_PREFERENCE_CONTENT);
    let fit = PREFERENCE_QUOTA.bytes / (MAX_PREFERENCE_CONTENT + 3);
    for n in 0..fit {
        hub.core
            .set_preference(ALICE, &format!("b{n}"), &big)
            .await
            .unwrap();
    }
    let refused = hub.core.set_preference(ALICE, "bn", &big).await;
    assert!(
        matches!(refused, Err(ChatError::QuotaExceeded(_))),
        "{refused:?}"
    );
    // Replacing one with the same size still fits: it is counted once.
    assert!(hub.core.set_preference(ALICE, "b0", &big).await.is_ok());

    let too_long = format!("{big}x");
    assert!(matches!(
        hub.core.set_preference(CAROL, "l", &too_long).await,
        Err(ChatError::TooLarge { .. })
    ));
    let label = "l".repeat(MAX_PREFERENCE_LABEL + 1);
    assert!(matches!(
        hub.core.set_preference(CAROL, &label, "c").await,
        Err(ChatError::Invalid(_))
    ));
    assert!(matches!(
        hub.core.set_preference(CAROL, "", "c").await,
        Err(ChatError::Invalid(_))
    ));
}

#[tokio::test]
async fn presence_is_known_per_session_and_room() {
    let hub = Hub::new().await;
    let (a, b) = (session(1), session(2));
    let lobby = hub.uid("Lobby");
    assert!(!hub.core.is_present(&a, &lobby));
    hub.join(ALICE, &a, "Lobby");
    assert!(hub.core.is_present(&a, &lobby));
    assert!(!hub.core.is_present(&b, &lobby), "another session");
    assert!(!hub.core.is_present(&a, &hub.uid("Annex")), "another room");
    assert!(!hub.core.is_present(&a, "no-such-room"));
    hub.core.part(ALICE, &a, &lobby).unwrap();
    assert!(!hub.core.is_present(&a, &lobby));
}

/// The history a joiner reads (XMPP reads it after the join, in a task of its own).
async fn join_history(hub: &Hub, user: &str, joined: &Joined, count: u32) -> Vec<String> {
    let (_, messages) = hub
        .core
        .history(user, &hub.uid("Lobby"), joined.history(count))
        .await
        .unwrap();
    messages.iter().map(|m| m.text.clone()).collect()
}

/// Texts of the posts `session` was sent live, since the last call.
fn live_to(hub: &Hub, session: &SessionRef) -> Vec<String> {
    hub.take()
        .into_iter()
        .filter(|(_, to)| to.contains(session))
        .filter_map(|(seen, _)| match seen {
            Seen::Posted { text, .. } => Some(text),
            _ => None,
        })
        .collect()
}

/// A post that lands between a join and the read of its history reaches the joiner once:
/// live, as it was published after the join, and not in the history as well. Posts are
/// committed at once by the memory store, so each moment is taken in turn: committed but
/// not published when the history is read, published before it is read, and both with
/// the room's recent history cached or not.
#[tokio::test]
async fn a_post_between_a_join_and_its_history_arrives_once() {
    for cached in [false, true] {
        for published_first in [false, true] {
            let hub = Hub::new().await;
            let (a, b) = (session(1), session(2));
            hub.join(ALICE, &a, "Lobby");
            hub.post(ALICE, &a, "Lobby", "before").await;
            if cached {
                hub.history(ALICE, "Lobby", HistoryQuery::Last(10)).await;
            }
            hub.take();

            let joined = hub.join(BOB, &b, "Lobby");
            let during = hub
                .core
                .post(ALICE, &a, &hub.uid("Lobby"), "during".into(), None)
                .ok()
                .unwrap();
            let history = if published_first {
                during.completed().await.unwrap();
                join_history(&hub, BOB, &joined, 10).await
            } else {
                let history = join_history(&hub, BOB, &joined, 10).await;
                during.completed().await.unwrap();
                history
            };
            let case = format!("cached: {cached}, published first: {published_first}");
            assert_eq!(history, ["before"], "{case}");
            assert_eq!(live_to(&hub, &b), ["during"], "{case}");
        }
    }
}

fn xmpp_session(n: u64) -> SessionRef {
    SessionRef {
        gateway: Gateway::Xmpp,
        connection: n,
        stream: Arc::from(format!("bob@example.test/{n}")),
    }
}

fn invited(room: &str, user: &str) -> Seen {
    Seen::Invited {
        room: room.into(),
        user: user.into(),
    }
}

fn room_names(offered: &[(i64, Arc<Room>)]) -> Vec<&str> {
    offered.iter().map(|(_, room)| room.name.as_str()).collect()
}

impl Hub {
    /// Invites `user` to `room` as an administrative change does.
    async fn invite(&self, user: &str, room: &str) {
        let room = self.room(room).id;
        committed(self.store.add_invitations(vec![(user.into(), room)], 0))
            .await
            .unwrap();
    }
}

/// An invitation made before a session signs in is offered by `online`; one made while it
/// is signed in is sent to it at once. Each is recorded, so the next sign-in is offered
/// neither, and a session that ended hears of none.
#[tokio::test]
async fn invitations_reach_signed_in_sessions_as_they_are_made_and_once() {
    let hub = Hub::new().await;
    hub.core.attach(Gateway::Xmpp, hub.events.clone());
    let (b, b2) = (xmpp_session(1), xmpp_session(2));
    hub.invite(BOB, "Lobby").await;
    assert_eq!(
        hub.core.deliver_invitations().await.unwrap(),
        0,
        "nobody online"
    );
    assert_eq!(
        room_names(&hub.core.online(BOB, &b).await.unwrap()),
        ["Lobby"]
    );

    hub.invite(BOB, "Annex").await;
    hub.invite(ALICE, "Annex").await;
    assert_eq!(hub.core.deliver_invitations().await.unwrap(), 1);
    assert_eq!(hub.take(), [(invited("Annex", BOB), vec![b.clone()])]);
    assert_eq!(
        hub.core.deliver_invitations().await.unwrap(),
        0,
        "sent once"
    );

    hub.core.leave_all(BOB, &b);
    hub.invite(BOB, "Flash").await;
    assert_eq!(hub.core.deliver_invitations().await.unwrap(), 0);
    assert!(hub.take().is_empty(), "the ended session heard of it");
    assert_eq!(
        room_names(&hub.core.online(BOB, &b2).await.unwrap()),
        ["Flash"]
    );
    assert!(
        hub.core
            .online(BOB, &xmpp_session(3))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Invitations made while a sign-in is under way: one made before the session is
/// registered is offered by the sign-in (not sent live), one made after is sent live and
/// its record does not hide the older ones the sign-in is still offering.
#[tokio::test]
async fn invitations_made_during_a_sign_in_reach_it_once() {
    let hub = Hub::new().await;
    hub.core.attach(Gateway::Xmpp, hub.events.clone());
    let b = xmpp_session(1);
    hub.invite(BOB, "Lobby").await;
    let mut online = Box::pin(hub.core.online(BOB, &b));
    // The memory store's reads are ready at their second poll.
    let mut step = || {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match online.as_mut().poll(&mut cx) {
            Poll::Ready(offered) => Some(offered),
            Poll::Pending => None,
        }
    };
    // Reading bob's record: not registered yet.
    assert!(step().is_none());
    hub.invite(BOB, "Annex").await;
    assert_eq!(hub.core.deliver_invitations().await.unwrap(), 0);
    // Registered, reading the invitations.
    assert!(step().is_none());
    hub.invite(BOB, "Flash").await;
    assert_eq!(hub.core.deliver_invitations().await.unwrap(), 1);
    assert_eq!(hub.take(), [(invited("Flash", BOB), vec![b.clone()])]);
    let offered = step().expect("the sign-in finished").unwrap();
    assert_eq!(room_names(&offered), ["Lobby", "Annex"]);
    assert!(
        hub.core
            .online(BOB, &xmpp_session(2))
            .await
            .unwrap()
            .is_empty(),
        "offered again"
    );
}
