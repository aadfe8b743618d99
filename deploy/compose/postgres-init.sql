-- One database per service: no service reads another's tables.
CREATE DATABASE members OWNER careloop;
CREATE DATABASE points OWNER careloop;
CREATE DATABASE records OWNER careloop;
CREATE DATABASE notifications OWNER careloop;
CREATE DATABASE interfaces OWNER careloop;
CREATE DATABASE gateway OWNER careloop;
