//! Routing and the handlers of `POST /orders`, `GET /orders/{id}` and
//! `GET /orders/{id}/status`.

use std::sync::Arc;

use apps_common::http::{
    error_response, invalid_request, json_response, method_not_allowed, read_json_body,
    unknown_path, ResponseBody,
};
use apps_common::json::{parse_json, Object};
use apps_common::sqlite::DatabaseError;
use http::header::{AUTHORIZATION, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tracing::{debug, error, warn};
use uuid::Uuid;

use crate::inventory::{InventoryClient, Reservation};
use crate::order::{OrderDetails, OrderStatus};
use crate::store::OrderStore;

/// The header in which the sidecar passes the subject (`sub`) of the verified token.
const SUBJECT_HEADER: &str = "x-portcullis-subject";

/// The state shared by the handlers.
#[derive(Debug)]
pub(crate) struct AppState {
    pub(crate) store: OrderStore,
    pub(crate) inventory: InventoryClient,
}

/// The body of `GET /orders/{id}/status`.
#[derive(Debug, Serialize)]
struct StatusBody {
    order_id: Uuid,
    status: OrderStatus,
}

/// The routes under `/orders/{id}`.
enum OrderResource {
    Order,
    Status,
}

pub(crate) async fn handle(
    state: Arc<AppState>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();

    if path == "/orders" {
        return match method {
            Method::POST => create_order(&state, request).await,
            _ => method_not_allowed(&method, &path, "POST"),
        };
    }

    let Some((id, resource)) = parse_order_path(&path) else {
        return unknown_path(&path);
    };
    if method != Method::GET {
        return method_not_allowed(&method, &path, "GET");
    }
    // An id that is not a UUID cannot name a stored order.
    let Ok(order_id) = Uuid::parse_str(id) else {
        return order_not_found(id);
    };
    match resource {
        OrderResource::Order => get_order(&state, order_id).await,
        OrderResource::Status => get_status(&state, order_id).await,
    }
}

/// Splits `/orders/{id}` and `/orders/{id}/status` into the id and the resource.
fn parse_order_path(path: &str) -> Option<(&str, OrderResource)> {
    let rest = path.strip_prefix("/orders/")?;
    let (id, resource) = match rest.split_once('/') {
        None => (rest, OrderResource::Order),
        Some((id, "status")) => (id, OrderResource::Status),
        Some(_) => return None,
    };
    (!id.is_empty()).then_some((id, resource))
}

async fn create_order(state: &AppState, request: Request<Incoming>) -> Response<ResponseBody> {
    let created_by = match request.headers().get(SUBJECT_HEADER) {
        None => None,
        Some(value) => match String::from_utf8(value.as_bytes().to_vec()) {
            Ok(subject) => Some(subject),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "X-Portcullis-Subject header is not valid UTF-8",
                )
            }
        },
    };
    let authorization: Vec<HeaderValue> = request
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .cloned()
        .collect();

    let body = match read_json_body(request).await {
        Ok(body) => body,
        Err(error) => return error.to_response(),
    };
    let details: OrderDetails = match parse_json(&body, "request body") {
        Ok(Object(details)) => details,
        Err(error) => return invalid_request(&error),
    };

    match state
        .inventory
        .take_stock(&details.items, &authorization)
        .await
    {
        Ok(Reservation::Taken) => {}
        Ok(Reservation::Insufficient(reason)) => {
            return json_response(StatusCode::CONFLICT, &reason)
        }
        Err(error) => {
            warn!(%error, "inventory call failed; the order was not stored");
            return error_response(
                StatusCode::BAD_GATEWAY,
                "inventory_failed",
                &error.to_string(),
            );
        }
    }

    let order_id = Uuid::new_v4();
    // NOTE: if this insert fails, the inventory keeps the stock it took for the order,
    // because nothing gives stock back.
    match state.store.insert(order_id, details, created_by).await {
        Ok(order) => {
            debug!(%order_id, items = order.details.items.len(), "order created");
            let mut response = json_response(StatusCode::CREATED, &order);
            if let Ok(location) = HeaderValue::from_str(&format!("/orders/{order_id}")) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        Err(error) => {
            error!(%order_id, %error, "inventory took the stock but the order could not be stored");
            database_failure()
        }
    }
}

async fn get_order(state: &AppState, order_id: Uuid) -> Response<ResponseBody> {
    match state.store.get(order_id).await {
        Ok(Some(order)) => json_response(StatusCode::OK, &order),
        Ok(None) => order_not_found(&order_id.to_string()),
        Err(error) => log_database_failure(&error),
    }
}

async fn get_status(state: &AppState, order_id: Uuid) -> Response<ResponseBody> {
    match state.store.status(order_id).await {
        Ok(Some(status)) => json_response(StatusCode::OK, &StatusBody { order_id, status }),
        Ok(None) => order_not_found(&order_id.to_string()),
        Err(error) => log_database_failure(&error),
    }
}

fn order_not_found(id: &str) -> Response<ResponseBody> {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no order with id {id:?}"),
    )
}

fn log_database_failure(error: &DatabaseError) -> Response<ResponseBody> {
    error!(%error, "database operation failed");
    database_failure()
}

fn database_failure() -> Response<ResponseBody> {
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the order database failed; see the order-app log",
    )
}
