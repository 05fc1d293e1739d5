-- gjj: 住房公积金管理中心 housing provident fund, the sample department that is authoritative
-- for housing-fund accounts.
--
-- Conventions of this source:
--   * grzh has one row per personal account, for about half of the residents aged 18-60;
--     the employer (dwmc, dwtyshxydm) is an enterprise of scjg;
--   * xingbie is 'M'/'F'; csny the birth date 'YYYY-MM-DD', some rows with ' 00:00:00'
--     appended; khrq the account opening date 'YYYY-MM-DD';
--   * zhzt is 正常/封存/销户; yjce the monthly contribution in yuan;
--   * sjhm is a mobile number written as '13812345678', '+86 138 1234 5678' or
--     '138-1234-5678', and may be NULL;
--   * gxsj is the last update, Asia/Shanghai local time without zone.
-- Types are portable across SQLite, PostgreSQL and MariaDB; the sample writer turns TIMESTAMP
-- into DATETIME on MySQL/MariaDB (whose TIMESTAMP converts time zones and ends in 2038).

CREATE TABLE grzh (
    grzh VARCHAR(20) PRIMARY KEY,  -- 个人账号
    xingming VARCHAR(64),          -- 姓名
    zjhm VARCHAR(32),              -- 证件号码
    xingbie VARCHAR(2),            -- 性别 M/F
    csny VARCHAR(20),              -- 出生年月 YYYY-MM-DD
    dwmc VARCHAR(200),             -- 单位名称
    dwtyshxydm VARCHAR(32),        -- 单位统一社会信用代码
    khrq VARCHAR(20),              -- 开户日期 YYYY-MM-DD
    zhzt VARCHAR(8),               -- 账户状态
    yjce DECIMAL(12,2),            -- 月缴存额
    sjhm VARCHAR(20),              -- 手机号码
    gxsj TIMESTAMP                 -- 更新时间
);
