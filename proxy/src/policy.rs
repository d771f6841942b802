//! Route policy: path safety checks, route matching, bearer token extraction and scope checks.
