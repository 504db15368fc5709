"""The time bank (时间银行): help requests between neighbours (邻里互助), paid in personal minutes."""
