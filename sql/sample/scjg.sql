-- scjg: 市场监管 market regulation, the sample department that is authoritative for an
-- enterprise's name, status and legal representative.
--
-- Conventions of this source:
--   * qyjbxx holds one row per enterprise (about one per ten residents), qygd its 1-4
--     shareholders; every legal representative and shareholder is a registered resident;
--   * tyshxydm is the 18-character 统一社会信用代码 (GB 32100-2015); enterprises registered
--     before 2015-10-01 may still carry their 15-digit 工商注册号 in that column;
--   * zczb and rjcze are capital amounts as text with units ('500万元', '1.2亿元', '300000元',
--     '50万', '100万元人民币'); czbl is the share ratio, the ratios of one enterprise sum to 1
--     (once rows entered twice are removed);
--   * clrq is the establishment date as 'YYYY/M/D' (no zero padding);
--   * djzt is one of 存续/在业/吊销/注销/迁出; zs (address) may be NULL;
--   * qydmdz (企业代码对照) holds, for most enterprises registered before 2015-10-01, the
--     15-digit 注册号 (zch) and the credit code that replaced it when re-licensed (换照); its
--     gxsj is the re-licensing time;
--   * gxsj is the last update, Asia/Shanghai local time without zone.
-- Types are portable across SQLite, PostgreSQL and MariaDB; the sample writer turns TIMESTAMP
-- into DATETIME on MySQL/MariaDB (whose TIMESTAMP converts time zones and ends in 2038).

CREATE TABLE qyjbxx (
    qyid INTEGER PRIMARY KEY,      -- 企业ID
    tyshxydm VARCHAR(32),          -- 统一社会信用代码
    qymc VARCHAR(200),             -- 企业名称
    qylx VARCHAR(50),              -- 企业类型
    fddbr VARCHAR(64),             -- 法定代表人
    fddbr_sfzh VARCHAR(32),        -- 法定代表人身份证号
    zczb VARCHAR(32),              -- 注册资本
    clrq VARCHAR(16),              -- 成立日期 YYYY/M/D
    djzt VARCHAR(16),              -- 登记状态
    zs VARCHAR(200),               -- 住所
    gxsj TIMESTAMP                 -- 更新时间
);

CREATE TABLE qygd (
    gdid INTEGER PRIMARY KEY,      -- 股东ID
    qyid INTEGER,                  -- 企业ID (qyjbxx.qyid)
    gdmc VARCHAR(64),              -- 股东名称
    gdzjhm VARCHAR(32),            -- 股东证件号码
    rjcze VARCHAR(32),             -- 认缴出资额
    czbl DECIMAL(7,4),             -- 出资比例
    gxsj TIMESTAMP                 -- 更新时间
);

CREATE TABLE qydmdz (
    dzid INTEGER PRIMARY KEY,      -- 对照ID
    zch VARCHAR(32),               -- 注册号 (15位工商注册号)
    tyshxydm VARCHAR(32),          -- 统一社会信用代码 (换照后)
    gxsj TIMESTAMP                 -- 更新时间 (换照时间)
);
