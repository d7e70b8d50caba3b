SELECT
  steps.step,
  s.g0,
  SUM(s.n) AS n,
  ARRAY_DISTINCT(FLATTEN(ARRAY_AGG(s.d0))) AS d0,
  SUM(s.h0) AS h0
FROM (
  SELECT
    m.seg AS seg,
    "app_domain" AS g0,
    COUNT(*) AS n,
    ARRAY_DISTINCT(ARRAY_AGG("user_email") FILTER(WHERE
      NOT "user_email" IS NULL)) AS d0,
    SUM(
      CASE
        WHEN CASE
          WHEN "ip_address" IS NULL
          THEN FALSE
          ELSE CASE
            WHEN REGEXP_LIKE(
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
      CASE
        WHEN "t_us" < 1794528000000000
        THEN CASE WHEN "t_us" < 1794441600000000 THEN 0 ELSE 1 END
        ELSE CASE WHEN "t_us" < 1794614400000000 THEN 2 ELSE 3 END
      END AS seg
    FROM records_access_requests
    WHERE
      "t_us" >= 1794355200000000
      AND "t_us" < 1794700800000000
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
) AS s
JOIN (VALUES
  (0, 0),
  (0, 1),
  (1, 1),
  (1, 2),
  (2, 2),
  (2, 3)) AS steps(step, seg)
  ON s.seg = steps.seg
GROUP BY
  steps.step,
  s.g0
