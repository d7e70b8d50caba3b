SELECT
  m.seg AS step,
  "app_domain" AS g0,
  COUNT(*) AS n,
  LIST(DISTINCT "user_email") FILTER(WHERE
    NOT "user_email" IS NULL) AS d0,
  SUM(
    CASE
      WHEN CASE
        WHEN "ip_address" IS NULL
        THEN FALSE
        ELSE CASE
          WHEN REGEXP_MATCHES(
            "ip_address",
            '^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])\z'
          )
          THEN (
            "ip_address" LIKE '10.%'
          )
          ELSE FALSE
        END
      END
      THEN 1
      ELSE 0
    END
  ) AS h0
FROM (
  SELECT
    *,
    0 AS seg
  FROM records_access_requests
  WHERE
    "t_us" >= 1794657600000000
    AND "t_us" < 1794744000000000
    AND CASE WHEN "allowed" IS NULL THEN FALSE ELSE "allowed" = TRUE END
    AND CASE
      WHEN "user_email" IS NULL
      THEN TRUE
      ELSE NOT (
        STRPOS("user_email", '@svc.example.com') > 0
      )
    END
    AND NOT (
      (
        (
          NOT "ip_address" IS NULL AND STRPOS("ip_address", ':') > 0
        )
        OR (
          NOT "_wrong" IS NULL AND STRPOS("_wrong", ',ip_address,') > 0
        )
      )
      OR (
        NOT "_wrong" IS NULL AND STRPOS("_wrong", ',app_domain,') > 0
      )
      OR (
        NOT "_wrong" IS NULL AND STRPOS("_wrong", ',user_email,') > 0
      )
    )
) AS m
GROUP BY
  m.seg,
  "app_domain"
