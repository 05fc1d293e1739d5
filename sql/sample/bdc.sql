-- bdc: 不动产登记中心 real-estate registration, the sample department that is authoritative
-- for property ownership (the 无房证明 / no-property check).
--
-- Conventions of this source:
--   * bdc_qlr (权利人) has one row per certificate and owner: a property co-owned by a married
--     couple has two rows with the same bdcqzh and bdcdyh; about 55% of adult residents own
--     1-3 properties, the rest none; every owner is a registered resident;
--   * bdcqzh looks like '浙(2019)杭州市不动产权第0012345号'; bdcdyh is the 28-character
--     不动产单元号 (county code + 地籍区/子区 + 宗地 + 定着物);
--   * zjzl is the ID type ('1' = 居民身份证), zjh the owner's ID number, xb '男'/'女';
--   * djsj is the registration date as 'YYYY年M月D日'; qszt is 现势 (current) or 历史;
--   * jzmj is the floor area in m²; gxsj the last update, Asia/Shanghai local time.
-- Types are portable across SQLite, PostgreSQL and MariaDB; the sample writer turns TIMESTAMP
-- into DATETIME on MySQL/MariaDB (whose TIMESTAMP converts time zones and ends in 2038).

CREATE TABLE bdc_qlr (
    ywh VARCHAR(32) PRIMARY KEY,   -- 业务号
    bdcqzh VARCHAR(64),            -- 不动产权证号
    bdcdyh VARCHAR(28),            -- 不动产单元号
    qlrmc VARCHAR(64),             -- 权利人名称
    zjzl VARCHAR(4),               -- 证件种类
    zjh VARCHAR(32),               -- 证件号
    xb VARCHAR(4),                 -- 性别 男/女
    zl VARCHAR(200),               -- 坐落
    jzmj DECIMAL(10,2),            -- 建筑面积 m²
    djsj VARCHAR(32),              -- 登记时间 YYYY年M月D日
    qszt VARCHAR(8),               -- 权属状态 现势/历史
    gxsj TIMESTAMP                 -- 更新时间
);
