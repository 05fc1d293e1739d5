-- gongan: 公安 household registration (户籍), the sample department that is authoritative for
-- a resident's name, sex, birth date, ethnicity and registered address.
--
-- Conventions of this source:
--   * one row per registered resident (常住人口); every person of the sample appears here once,
--     plus the rows entered twice by mistake (same gmsfhm, new rkbh);
--   * rkbh is 'RK' + 10 digits; gmsfhm the 18-digit 公民身份号码 (some dirty: 15-digit legacy
--     numbers, wrong check characters, lowercase x, full-width digits, stray spaces);
--   * xb is the GB/T 2261.1 code ('1' male, '2' female), mz the GB/T 3304 code ('01' 汉族);
--   * csrq is the birth date as 'YYYYMMDD' text; hjdz and lxdh (a mobile number) may be NULL;
--   * gxsj is the last update, Asia/Shanghai local time without zone.
-- Types are portable across SQLite, PostgreSQL and MariaDB; the sample writer turns TIMESTAMP
-- into DATETIME on MySQL/MariaDB (whose TIMESTAMP converts time zones and ends in 2038).

CREATE TABLE czrk (
    rkbh VARCHAR(20) PRIMARY KEY,  -- 人口编号
    gmsfhm VARCHAR(32),            -- 公民身份号码
    xm VARCHAR(64),                -- 姓名
    xb VARCHAR(4),                 -- 性别 (GB/T 2261.1)
    mz VARCHAR(4),                 -- 民族 (GB/T 3304)
    csrq VARCHAR(16),              -- 出生日期 YYYYMMDD
    hjdz VARCHAR(200),             -- 户籍地址
    lxdh VARCHAR(32),              -- 联系电话
    gxsj TIMESTAMP                 -- 更新时间
);
