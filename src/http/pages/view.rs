//! `/view-records`: the filter form and one page of the matching records,
//! with a note for every region read from its replica or not at all.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::render;
use crate::domain::{NodeId, RecordFilter};
use crate::http::auth::PageAuth;
use crate::http::{AppState, assets};
use crate::reads::FilterResult;

/// The filter form's values as typed, kept for re-rendering and paging links.
#[derive(Default)]
struct FilterForm {
    zip_min: String,
    zip_max: String,
    city: String,
    state: String,
    region: String,
    limit: String,
}

pub struct Note {
    kind: &'static str,
    text: String,
}

#[derive(Template)]
#[template(path = "view.html")]
struct ViewPage {
    page: &'static str,
    asset_version: &'static str,
    auth: PageAuth,
    regions: Vec<NodeId>,
    page_sizes: [u32; 4],
    q: FilterForm,
    error: Option<String>,
    error_field: String,
    result: Option<FilterResult>,
    notes: Vec<Note>,
    first: u64,
    last: u64,
    prev_href: Option<String>,
    next_href: Option<String>,
}

const PAGE_SIZES: [u32; 4] = [10, 25, 50, 100];

const DEFAULT_PAGE_SIZE: u32 = 25;

pub async fn view(
    State(state): State<AppState>,
    auth: PageAuth,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let mut page = ViewPage::new(&state, auth, FilterForm::of(&params));
    let lookup = |k: &str| match k {
        "limit" => Some(page.q.limit.clone()),
        _ => params.get(k).cloned(),
    };
    let filter = match RecordFilter::parse(lookup, &state.regions) {
        Ok(f) => f,
        Err(e) => {
            page.error = Some(e.message);
            page.error_field = e.field;
            return render(StatusCode::UNPROCESSABLE_ENTITY, page);
        }
    };
    let result = state.reads.filter(&filter).await;
    page.notes = notes(&result);
    let shown = result.records.len() as u64;
    page.first = filter.offset + u64::from(shown > 0);
    page.last = filter.offset + shown;
    let limit = u64::from(filter.limit);
    if filter.offset > 0 {
        page.prev_href = Some(page_href(&page.q, filter.offset.saturating_sub(limit)));
    }
    if filter.offset + shown < result.total {
        page.next_href = Some(page_href(&page.q, filter.offset + limit));
    }
    page.result = Some(result);
    render(StatusCode::OK, page)
}

impl FilterForm {
    /// The form as typed (the page size defaults to 25).
    fn of(params: &HashMap<String, String>) -> FilterForm {
        let get = |k: &str| params.get(k).cloned().unwrap_or_default();
        FilterForm {
            zip_min: get("zipRangeMin"),
            zip_max: get("zipRangeMax"),
            city: get("city"),
            state: get("state"),
            region: get("region"),
            limit: params
                .get("limit")
                .cloned()
                .unwrap_or_else(|| DEFAULT_PAGE_SIZE.to_string()),
        }
    }
}

impl ViewPage {
    /// The page with the form filled in and no result yet.
    fn new(state: &AppState, auth: PageAuth, q: FilterForm) -> ViewPage {
        ViewPage {
            page: "view",
            asset_version: assets::version(),
            auth,
            regions: state.regions.nodes().cloned().collect(),
            page_sizes: PAGE_SIZES,
            q,
            error: None,
            error_field: String::new(),
            result: None,
            notes: Vec::new(),
            first: 0,
            last: 0,
            prev_href: None,
            next_href: None,
        }
    }
}

/// A note for every region read from its replica or not read at all.
fn notes(result: &FilterResult) -> Vec<Note> {
    let from_replica = result.sources.iter().filter(|s| s.replica).map(|s| Note {
        kind: "warning",
        text: format!(
            "Region {} was read from its replica on node {}: its home node is unavailable or did not answer.",
            s.region, s.served_by
        ),
    });
    let unread = result.unavailable_regions.iter().map(|region| Note {
        kind: "error",
        text: format!(
            "Region {region} could not be read: its home node and its replica node are both unavailable. Its records are missing from this list."
        ),
    });
    from_replica.chain(unread).collect()
}

/// A link to another page of the same filter (filters stay in the query
/// string, so every view can be bookmarked and shared).
fn page_href(q: &FilterForm, offset: u64) -> String {
    let offset = offset.to_string();
    let pairs: Vec<(&str, &str)> = [
        ("zipRangeMin", q.zip_min.as_str()),
        ("zipRangeMax", q.zip_max.as_str()),
        ("city", q.city.as_str()),
        ("state", q.state.as_str()),
        ("region", q.region.as_str()),
        ("limit", q.limit.as_str()),
        ("offset", offset.as_str()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .collect();
    format!(
        "/view-records?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_links_keep_the_filters() {
        let q = FilterForm {
            city: "São Paulo & co".into(),
            limit: "10".into(),
            ..FilterForm::default()
        };
        assert_eq!(
            page_href(&q, 20),
            "/view-records?city=S%C3%A3o+Paulo+%26+co&limit=10&offset=20"
        );
    }
}
