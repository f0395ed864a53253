
use super::*;

fn stream(body: &str, limit: usize) -> Result<(bool, usize), SourceError> {
    let mut n = 0;
    let overflow = stream_rows("s", "e", &mut body.as_bytes(), limit, |_| n += 1)?;
    Ok((overflow, n))
}

#[test]
fn rows_stream_one_by_one_and_the_limit_means_truncated() {
    let body = r#"{"code":200,"error":null,"msg":"3 records were found","data":[{"conn_id":"1"},{"conn_id":"2"},{"conn_id":"3"}]}"#;
    assert_eq!(stream(body, 10).unwrap(), (false, 3));
    assert!(
        stream(body, 3).unwrap().0,
        "reaching the limit is an overflow"
    );
    assert!(stream(body, 2).unwrap().0);
}

#[test]
fn envelope_errors_are_reported() {
    assert_eq!(
        stream(r#"{"code":"500","error":"busy","data":null}"#, 10)
            .unwrap_err()
            .kind(),
        "vendor_code"
    );
    assert_eq!(
        stream(r#"{"code":200,"data":null}"#, 10)
            .unwrap_err()
            .kind(),
        "parse"
    );
    assert_eq!(
        stream(r#"{"code":200,"data":[{"conn_id":"1"},"#, 10)
            .unwrap_err()
            .kind(),
        "parse"
    );
    assert_eq!(
        stream(r#"{"data":[],"code":"201"}"#, 10).unwrap(),
        (false, 0),
        "key order does not matter"
    );
}
