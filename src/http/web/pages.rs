//! The room page's templates (`templates/web/`), rendered by askama with HTML escaping.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// What every page's frame shows: who is signed in, the form token, and a message.
#[derive(Default)]
pub struct Frame {
    pub signed_in: Option<String>,
    pub csrf: String,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// A page with the frame every signed-in page shows.
pub trait Framed: Template {
    fn frame_mut(&mut self) -> &mut Frame;
}

/// One option of a select.
pub struct Choice {
    pub value: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "web/sign_in.html")]
pub struct SignInPage {
    pub frame: Frame,
    pub user: String,
    pub domain: String,
}

pub struct RoomRow {
    pub uid: String,
    pub name: String,
    pub category: String,
    pub privacy: String,
    pub kind: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "web/rooms.html")]
pub struct RoomsPage {
    pub frame: Frame,
    pub rooms: Vec<RoomRow>,
    /// Categories the user may create rooms in.
    pub categories: Vec<Choice>,
    pub privacies: Vec<Choice>,
    pub kinds: Vec<Choice>,
    /// The create form's fields as last typed.
    pub name: String,
    pub description: String,
}

/// A room's editable text fields, as stored or as typed.
pub struct RoomForm {
    pub name: String,
    pub description: String,
    pub members: String,
    pub managers: String,
    pub presenters: String,
}

#[derive(Template)]
#[template(path = "web/room.html")]
pub struct RoomPage {
    pub frame: Frame,
    pub uid: String,
    pub category: String,
    pub disabled: bool,
    pub domain: String,
    pub privacies: Vec<Choice>,
    pub kinds: Vec<Choice>,
    pub invitation_choices: Vec<Choice>,
    pub room: RoomForm,
}

#[derive(Template)]
#[template(path = "web/refusal.html")]
pub struct Refusal {
    pub frame: Frame,
    pub heading: String,
}

pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("cannot render the page: {error}\n"),
        )
            .into_response(),
    }
}

impl Framed for RoomsPage {
    fn frame_mut(&mut self) -> &mut Frame {
        &mut self.frame
    }
}

impl Framed for RoomPage {
    fn frame_mut(&mut self) -> &mut Frame {
        &mut self.frame
    }
}
