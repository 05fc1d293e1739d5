-- mz: 民政 civil affairs, the sample department that is authoritative for marital status.
--
-- Conventions of this source:
--   * hydj has one row per marriage or divorce registration; a marriage links two registered
--     adult residents of opposite sex (man at least 22, woman at least 20); a divorce is a
--     second row (ywlx 离婚) for the same pair; nobody is in two current marriages;
--   * nfxm/nfsfzh are the man's name and ID number, nvfxm/nvfsfzh the woman's;
--   * djrq is the registration date as 'YYYY.MM.DD'; djjg the registration office
--     (e.g. 杭州市西湖区民政局婚姻登记处) and may be NULL;
--   * gxsj is the last update, Asia/Shanghai local time without zone.
-- Types are portable across SQLite, PostgreSQL and MariaDB; the sample writer turns TIMESTAMP
-- into DATETIME on MySQL/MariaDB (whose TIMESTAMP converts time zones and ends in 2038).

CREATE TABLE hydj (
    djxh VARCHAR(32) PRIMARY KEY,  -- 登记序号
    ywlx VARCHAR(8),               -- 业务类型 结婚/离婚
    nfxm VARCHAR(64),              -- 男方姓名
    nfsfzh VARCHAR(32),            -- 男方身份证号
    nvfxm VARCHAR(64),             -- 女方姓名
    nvfsfzh VARCHAR(32),           -- 女方身份证号
    djrq VARCHAR(16),              -- 登记日期 YYYY.MM.DD
    djjg VARCHAR(100),             -- 登记机关
    gxsj TIMESTAMP                 -- 更新时间
);
