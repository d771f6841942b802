//! Routing and the handlers of `PUT /inventory` and `GET /inventory/{code}`.

use std::sync::Arc;

use apps_common::http::{
    error_response, invalid_request, json_response, method_not_allowed, no_content, read_json_body,
    unknown_path, ResponseBody,
};
use apps_common::items::ItemList;
use apps_common::json::parse_json;
use apps_common::sqlite::DatabaseError;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use tracing::{debug, error};

use crate::store::{StockStore, TakeOutcome};

/// The 409 body: the common error fields plus the item that is short.
#[derive(Debug, Serialize)]
struct InsufficientStockBody<'a> {
    error: &'static str,
    detail: String,
    code: &'a str,
    requested: u32,
    available: i64,
}

/// The body of `GET /inventory/{code}`.
#[derive(Debug, Serialize)]
struct StockLevelBody<'a> {
    code: &'a str,
    qty: i64,
}

pub(crate) async fn handle(
    store: Arc<StockStore>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();

    if path == "/inventory" {
        return match method {
            Method::PUT => take_stock(&store, request).await,
            _ => method_not_allowed(&method, &path, "PUT"),
        };
    }

    match path.strip_prefix("/inventory/") {
        Some(code) if !code.is_empty() && !code.contains('/') => match method {
            Method::GET => stock_level(&store, code).await,
            _ => method_not_allowed(&method, &path, "GET"),
        },
        _ => unknown_path(&path),
    }
}

async fn take_stock(store: &StockStore, request: Request<Incoming>) -> Response<ResponseBody> {
    let body = match read_json_body(request).await {
        Ok(body) => body,
        Err(error) => return error.to_response(),
    };
    let items: ItemList = match parse_json(&body, "items") {
        Ok(items) => items,
        Err(error) => return invalid_request(&error),
    };
    let item_count = items.len();

    match store.take(items).await {
        Ok(TakeOutcome::Taken) => {
            debug!(items = item_count, "took stock");
            no_content()
        }
        Ok(TakeOutcome::UnknownCode { index, code }) => error_response(
            StatusCode::BAD_REQUEST,
            "unknown_item",
            &format!("items[{index}].code {:?} is not an item this inventory stocks", code.as_str()),
        ),
        Ok(TakeOutcome::Insufficient {
            code,
            requested,
            available,
        }) => json_response(
            StatusCode::CONFLICT,
            &InsufficientStockBody {
                error: "insufficient_stock",
                detail: format!(
                    "item {code} has {available} in stock but {requested} were requested; nothing was taken"
                ),
                code: code.as_str(),
                requested,
                available,
            },
        ),
        Err(error) => database_failure(&error),
    }
}

async fn stock_level(store: &StockStore, code: &str) -> Response<ResponseBody> {
    match store.level(code.to_owned()).await {
        Ok(Some(qty)) => json_response(StatusCode::OK, &StockLevelBody { code, qty }),
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("item {code:?} is not an item this inventory stocks"),
        ),
        Err(error) => database_failure(&error),
    }
}

fn database_failure(error: &DatabaseError) -> Response<ResponseBody> {
    error!(%error, "database operation failed");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "the inventory database failed; see the inventory-app log",
    )
}
